"""Fields every config shares: seed, parallelism, optimizer, the loop.

Task configs (supervised.py, memnet.py, ...) extend this one and override
what differs; no field is defined twice.
"""
import ml_collections


def get_config(quick: bool = False) -> ml_collections.ConfigDict:
  """`quick`: a smoke run of a minute or so."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # Fixes the split, init, data order, augmentation and dropout.
  c.task = ""  # A name from ssl_jax.tasks; set by each task config.
  c.parallel = "jit"  # 'jit' over a device mesh, or 'pmap'.
  c.init_from = ""  # Workdir or checkpoint whose backbone to start from.
  # EMA of the parameters and BatchNorm statistics (FixMatch: 0.999); its
  # ema_{split}_* metrics are recorded next to the raw weights' each epoch,
  # and it is checkpointed. 0 = none.
  c.ema_decay = 0.0
  # Frozen backbone, unaugmented images: compute its features once, cache
  # them in workdir/features and train the head alone (ssl_jax/evals/frozen_features.py).
  c.cache_features = False

  # Where batches come from (ssl_jax/data/feeds.py); task configs add the rest.
  c.input = ml_collections.ConfigDict()
  # 'device': every split on every device, batches gathered inside jit
  # (fastest where it fits); 'stream': splits on the host, batches read by
  # Grain threads and prefetched to the devices; 'auto': 'device' unless the
  # splits exceed device_memory_gb. Same batches, same order, either way.
  c.input.pipeline = "auto"
  c.input.device_memory_gb = 2.0  # 'auto': per-device budget for the splits.
  # A config lists only fields its run reads. Fields of one mode are added by
  # the configs that use it, else the code's defaults hold: 'stream':
  # input.stream_threads (8 Grain readers), input.stream_prefetch (16
  # batches); input.sampling ('permutation': every example once a pass;
  # 'replacement'); 'step' schedule: optimizer.decay_every_epochs, decay_factor,
  # decay_begin_epochs (0: decays counted from the first epoch);
  # 'momentum': optimizer.momentum (0.9), optimizer.nesterov (True);
  # grad_clip_norm > 0: optimizer.clip_per_param (False: one global norm);
  # patience > 0: early_stopping.metric ('val_accuracy').

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adam"  # adam | adamw | sgd | momentum | rmsprop | adadelta.
  c.optimizer.learning_rate = 1e-3  # Peak learning rate.
  c.optimizer.schedule = "cosine"  # 'constant', 'cosine' decay to 0, or 'step'.
  c.optimizer.warmup_steps = 0  # Linear warmup steps.
  c.optimizer.weight_decay = 0.0  # L2 (decoupled for adamw).
  c.optimizer.grad_clip_norm = 0.0  # Global-norm clipping; 0 = off.
  c.optimizer.frozen_params = ""  # Regex of parameter paths never updated.

  c.num_epochs = 2 if quick else 60  # Epochs of `steps_per_epoch` steps.
  c.steps_per_epoch = 10 if quick else 0  # 0 = one pass over the train set.
  c.log_every_steps = 5 if quick else 50  # Progress line (steps/s, ETA).
  c.checkpoint_every_steps = 0  # Extra mid-epoch saves; epoch ends always save.
  # (first, last): jax.profiler trace of steps first..last-1 into
  # workdir/profile, for TensorBoard's profile plugin; () = none.
  c.profile_steps = ()
  c.keep_checkpoints = 2  # Checkpoints kept in workdir/checkpoints.
  c.early_stopping = ml_collections.ConfigDict()
  c.early_stopping.patience = 0  # Epochs without improvement; 0 = off.
  return c

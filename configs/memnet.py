"""Memory networks on bAbI: the Keras `babi_memnn` port, or MemN2N.

  python -m ssl_jax.main --config=configs/memnet.py:model=memnet_keras,task=1 --workdir=/tmp/m
  python -m ssl_jax.main --config=configs/memnet.py:model=memn2n,task=2 --workdir=/tmp/m2
  (append ,quick for a smoke run; ,paper for Sukhbaatar et al.'s training
  protocol, memn2n only)

The loop and optimizer fields not set here come from base.py.
"""
import ml_collections

from ssl_jax import config_files


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: comma-separated model=memnet_keras|memn2n, task=1..20|all, quick,
  paper (End-To-End Memory Networks' protocol: SGD 0.01 halved every 25 of
  100 epochs, linear start until the val loss stops falling, 10% held out),
  ls=val_loss|epochs (with paper: how linear start ends)."""
  args = config_files.parse_arg(arg, {"model", "task", "quick", "paper",
                                     "ls"})
  model = args.get("model", "memnet_keras")
  paper = "paper" in args
  if paper and model != "memn2n":
    raise ValueError(f"paper is MemN2N's protocol; got model={model!r}.")
  c = config_files.sibling(__file__, "base", quick="quick" in args)
  c.task = "babi_qa"  # A name from ssl_jax.tasks.

  c.input.data_dir = ""  # bAbI release dir; '' = $SSL_JAX_DATA_DIR/babi, ../shared/data/babi.
  task = args.get("task", "1")
  # bAbI task, 1-20; 0 (task=all): one model on every task found, jointly
  # (one vocabulary; per-task test accuracy in workdir/per_task_test.json).
  c.input.babi_task = 0 if task == "all" else int(task)
  c.input.babi_size = "10k"  # '10k' (en-10k/) or '1k' (en/).
  # Training questions of each task held out for validation/tuning (paper:
  # 10%, 1000 of the 10k; use 100 with babi_size='1k').
  c.input.val_size = 1000 if paper else 0
  # MemN2N memories; 0 = longest story, at most 50 (paper: 50).
  c.input.memory_size = 50 if paper else 0
  # Global batch size, divisible by the device count. memnet_keras: 8 (best
  # on the validation split: more updates per epoch shorten its plateaus).
  c.input.batch_size = 8 if model == "memnet_keras" else 32
  c.input.eval_batch_size = 500  # Global eval batch size.

  c.model = ml_collections.ConfigDict()
  c.model.name = model  # 'memnet_keras' or 'memn2n'.
  if model == "memnet_keras":
    c.model.embed_dim = 64  # Embedding size of m and u.
    c.model.lstm_units = 32  # LSTM width.
    c.model.dropout_rate = 0.2  # After each embedding and the LSTM (0.2: best on val).
    c.model.match_activation = "softmax"  # 'softmax' (Keras) or 'relu'.
    c.model.embed_init_scale = 0.3  # Embeddings start in +-scale (Keras: 0.05;
    # 0.3 escapes the early plateau more reliably, on the validation split).
  elif model == "memn2n":
    c.model.embed_dim = 50 if task == "all" else 20  # d (paper: 50 jointly).
    c.model.hops = 3  # Memory hops K.
    c.model.weight_tying = "adjacent"  # 'adjacent' or 'layerwise'.
    c.model.position_encoding = True  # PE sentence representation.
    # PE weights: 'paper' (Sec. 4.1, J = each sentence's length) or
    # 'matlab' (the authors' code: J = the padded length, ~2x the paper's).
    c.model.position_formula = "paper"
    # False: empty memory slots are zero memories in the attention softmax
    # (the authors' code); True: they are left out of it.
    c.model.mask_empty_memories = True
    c.model.tie_output = True  # Adjacent tying: W^T = C^K; False: its own W.
    c.model.temporal_encoding = True  # TE: learned recency embeddings.
    c.model.random_empty_memories = 0.1  # RN: empty-memory insertion rate.
    c.model.linear_start = False  # LS: no memory softmax (paper's LS phase).
  else:
    raise ValueError(f"model must be memnet_keras or memn2n, got {model!r}.")

  c.optimizer.learning_rate = 1e-3 if model == "memnet_keras" else 1e-2  # Peak.
  # 'constant', 'cosine' decay to 0 or 'step' (memnet_keras: constant, best
  # on val; paper: step).
  c.optimizer.schedule = ("constant" if model == "memnet_keras" else
                          "step" if paper else "cosine")
  c.optimizer.grad_clip_norm = 40.0  # Sukhbaatar et al.'s global-norm clip.
  if paper:
    c.optimizer.name = "sgd"  # Plain SGD,
    # at the paper's 0.01 on the loss summed over a batch of 32 (the authors'
    # code: size_average=false); our loss is the batch mean: 0.01 x 32.
    c.optimizer.learning_rate = 0.01 * c.input.batch_size
    # Their clip at 40 of each parameter's summed gradient, in mean units.
    c.optimizer.grad_clip_norm = 40.0 / c.input.batch_size
    c.optimizer.clip_per_param = True
    # Epochs between decays: 25 of 100; jointly, 15 of 60 as the paper.
    c.optimizer.decay_every_epochs = 15 if task == "all" else 25
    c.optimizer.decay_factor = 0.5  # Halved at each.

  # MemN2N: 'val_loss' = linear start (no memory softmax) from the first
  # epoch until the val loss stops falling, then the softmax for good (needs
  # input.val_size > 0); 'epochs' = for linear_start_epochs epochs; 'off' =
  # model.linear_start throughout. Arg ls=epochs|val_loss with paper.
  c.linear_start = args.get("ls", "val_loss") if paper else "off"
  if c.linear_start == "epochs":
    # LS epochs (the authors' MemN2N-babi-matlab code: 20; 30 jointly).
    c.linear_start_epochs = 30 if task == "all" else 20
  if c.linear_start != "off":
    c.linear_start_lr_scale = 0.5  # LR factor in LS (paper: 0.005 for 0.01).
  c.report_examples = 5  # Test stories printed with prediction and truth.
  if "quick" in args:
    c.steps_per_epoch = 20
    c.log_every_steps = 10
  else:
    # Passes over the training questions (paper: 100; 60 jointly).
    c.num_epochs = 100 if paper and task != "all" else 60
    c.log_every_steps = 100
  return c

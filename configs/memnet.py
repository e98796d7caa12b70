"""Memory networks on bAbI: the Keras `babi_memnn` port, or MemN2N.

  python -m ssl_jax.main --config=configs/memnet.py:model=memnet_keras,task=1 --workdir=/tmp/m
  python -m ssl_jax.main --config=configs/memnet.py:model=memn2n,task=2 --workdir=/tmp/m2
  (append ,quick for a smoke run)

The loop and optimizer fields not set here come from base.py.
"""
import ml_collections

from ssl_jax import config_files


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: comma-separated model=memnet_keras|memn2n, task=1..20, quick."""
  args = config_files.parse_arg(arg, {"model", "task", "quick"})
  model = args.get("model", "memnet_keras")
  c = config_files.sibling(__file__, "base", quick="quick" in args)
  c.task = "babi_qa"  # A name from ssl_jax.tasks.

  c.input = ml_collections.ConfigDict()
  c.input.data_dir = ""  # bAbI release dir; '' = $SSL_JAX_DATA_DIR/babi, ../shared/data/babi.
  c.input.babi_task = int(args.get("task", 1))  # bAbI task, 1-20.
  c.input.babi_size = "10k"  # '10k' (en-10k/) or '1k' (en/).
  c.input.val_size = 0  # Training questions held out for validation/tuning.
  c.input.memory_size = 0  # MemN2N memories; 0 = longest story, at most 50.
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
    c.model.embed_dim = 20  # Embedding size d.
    c.model.hops = 3  # Memory hops K.
    c.model.weight_tying = "adjacent"  # 'adjacent' or 'layerwise'.
    c.model.position_encoding = True  # PE sentence representation.
    c.model.temporal_encoding = True  # TE: learned recency embeddings.
    c.model.random_empty_memories = 0.1  # RN: empty-memory insertion rate.
    c.model.linear_start = False  # LS: no memory softmax (paper's LS phase).
  else:
    raise ValueError(f"model must be memnet_keras or memn2n, got {model!r}.")

  c.optimizer.learning_rate = 1e-3 if model == "memnet_keras" else 1e-2  # Peak.
  # 'constant' or 'cosine' decay to 0 (memnet_keras: constant, best on val).
  c.optimizer.schedule = "constant" if model == "memnet_keras" else "cosine"
  c.optimizer.grad_clip_norm = 40.0  # Sukhbaatar et al.'s global-norm clip.

  c.linear_start_epochs = 0  # MemN2N: epochs without the memory softmax (LS).
  c.report_examples = 5  # Test stories printed with prediction and truth.
  if "quick" in args:
    c.steps_per_epoch = 20
    c.log_every_steps = 10
  else:
    c.num_epochs = 60  # Passes over the 10,000 training questions.
    c.log_every_steps = 100
  return c

"""Memory networks on bAbI: the Keras `babi_memnn` port, or MemN2N.

  python -m ssl_jax.main --config=configs/memnet.py:model=memnet_keras,task=1 --workdir=/tmp/m
  python -m ssl_jax.main --config=configs/memnet.py:model=memn2n,task=2,size=1k --workdir=/tmp/m2
  (append ,quick for a smoke run; ,paper for the protocol as End-To-End
  Memory Networks' text describes it, memn2n only)

MemN2N follows the authors' MemN2N-babi-matlab code (as vinhkhuc's NumPy
port runs it) unless `paper`; each field says which source it follows. The
loop and optimizer fields not set here come from base.py.
"""
import ml_collections

from ssl_jax import config_files


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  """`arg`: comma-separated model=memnet_keras|memn2n, task=1..20|all,
  size=10k|1k, quick, paper (memn2n: Sukhbaatar et al.'s text: SGD 0.01
  halved every 25 of 100 epochs, linear start until the val loss stops
  falling), ls=val_loss|epochs (with paper: how linear start ends)."""
  args = config_files.parse_arg(arg, {"model", "task", "size", "quick",
                                     "paper", "ls"})
  model = args.get("model", "memnet_keras")
  paper = "paper" in args
  code = model == "memn2n" and not paper  # The authors' code's protocol.
  if paper and model != "memn2n":
    raise ValueError(f"paper is MemN2N's protocol; got model={model!r}.")
  c = config_files.sibling(__file__, "base", quick="quick" in args)
  c.task = "babi_qa"  # A name from ssl_jax.tasks.

  c.input.data_dir = ""  # bAbI release dir; '' = $SSL_JAX_DATA_DIR/babi, ../shared/data/babi.
  task = args.get("task", "1")
  joint = task == "all"
  # bAbI task, 1-20; 0 (task=all): one model on every task found, jointly
  # (one vocabulary; per-task test accuracy in workdir/per_task_test.json).
  c.input.babi_task = 0 if joint else int(task)
  c.input.babi_size = args.get("size", "10k")  # '10k' (en-10k/) or '1k' (en/).
  # 'code': lower case, no punctuation (the authors' code); 'keras': '.' and
  # '?' are tokens, case kept (the Keras example; the paper says nothing).
  c.input.tokens = "code" if code else "keras"
  # Training questions of each task held out for validation (the code and
  # the paper: 10%).
  c.input.val_size = ((100 if c.input.babi_size == "1k" else 1000)
                      if code or paper else 0)
  if code or paper:
    # 'last': the end of each task's file (the code per task); 'random':
    # drawn from the seed (the code jointly; the paper does not say).
    c.input.val_split = "last" if code and not joint else "random"
    # 'replacement': each batch's questions drawn at random, repeats allowed
    # (the code); 'permutation': each question once a pass (the paper does
    # not say).
    c.input.sampling = "replacement" if code else "permutation"
  # MemN2N memories; 0 = the longest training story, at most 50 (the code);
  # the paper: 50.
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
    c.model.embed_dim = 50 if joint else 20  # d (both sources: 50 jointly).
    c.model.hops = 3  # Memory hops K.
    c.model.weight_tying = "adjacent"  # 'adjacent' or 'layerwise'.
    c.model.position_encoding = True  # PE sentence representation.
    # PE weights: 'code' (1 + 4(k - (d+1)/2)(j - (J+1)/2)/(dJ), one J: the
    # longest sentence + 1) or 'paper' (Sec. 4.1, J = each sentence's length).
    c.model.position_formula = "paper" if paper else "code"
    # False: empty memory slots are zero memories in the attention softmax
    # (the code); True: they are left out of it (our reading of the paper).
    c.model.mask_empty_memories = paper
    c.model.tie_output = True  # Adjacent tying: W^T = C^K; False: its own W.
    c.model.temporal_encoding = True  # TE: learned time embeddings.
    # True: time words in each word table at PE's last position, answer
    # classes too (the code); False: separate tables T_A, T_C (the paper).
    c.model.time_words = not paper
    c.model.random_empty_memories = 0.1  # RN rate (both sources: 0.1).
    # 'code': 0..ceil(0.1 n) - 1 blanks at random places; 'bernoulli': one
    # after each sentence with probability 0.1 (our reading of the paper).
    c.model.random_noise = "bernoulli" if paper else "code"
    # True: the nil word that pads the code's fixed-size sentences takes
    # gradient, counted in its table's clipping norm (the code); False: none.
    c.model.nil_gradient = not paper
    c.model.linear_start = False  # LS: no memory softmax (set by the phase).
  else:
    raise ValueError(f"model must be memnet_keras or memn2n, got {model!r}.")

  c.optimizer.learning_rate = 1e-3  # memnet_keras: constant, best on val.
  c.optimizer.schedule = "constant"
  c.optimizer.grad_clip_norm = 40.0  # memnet_keras: global-norm clip.
  if model == "memn2n":
    c.optimizer.name = "sgd"  # Plain SGD (both sources),
    # on the loss summed over a batch of 32 (the code: size_average=false);
    # our loss is the batch mean, hence x 32. The code: 0.005 from the
    # first epoch to the last; the paper: 0.01 (0.005 in linear start).
    c.optimizer.learning_rate = (0.01 if paper else 0.005) * c.input.batch_size
    # Clipping at 40 of each parameter's summed gradient (the code), in mean
    # units: a matrix by its spectral norm, as MATLAB's norm().
    c.optimizer.grad_clip_norm = 40.0 / c.input.batch_size
    c.optimizer.clip_per_param = True
    c.optimizer.schedule = "step"  # Halved every 25 epochs, 15 jointly.
    c.optimizer.decay_every_epochs = 15 if joint else 25
    c.optimizer.decay_factor = 0.5
    if code:
      # The code halves at the start of every 25th epoch after linear
      # start's 20 (30 jointly): its epochs 44, 69, 94, 119 (1-based 45...).
      c.optimizer.decay_begin_epochs = 29 if joint else 19

  # MemN2N: 'epochs' = linear start (no memory softmax) for
  # linear_start_epochs epochs (the code); 'val_loss' = from the first epoch
  # until the val loss stops falling (the paper's text); then the softmax
  # for good. Arg ls=epochs|val_loss with paper.
  c.linear_start = ("off" if model != "memn2n" else
                    args.get("ls", "val_loss") if paper else "epochs")
  if c.linear_start == "epochs":
    c.linear_start_epochs = 30 if joint else 20  # The code's LS epochs.
  if c.linear_start != "off":
    # LR factor in LS: the code 1 (0.005 throughout), the paper 0.5.
    c.linear_start_lr_scale = 0.5 if paper else 1.0
  c.report_examples = 5  # Test stories printed with prediction and truth.
  if "quick" in args:
    c.steps_per_epoch = 20
    c.log_every_steps = 10
  else:
    # Epochs: the code 20 LS + 100 (30 + 60 jointly); the paper 100 (60).
    c.num_epochs = ((90 if joint else 120) if code else
                    (60 if joint else 100) if paper else 60)
    c.log_every_steps = 100
  return c

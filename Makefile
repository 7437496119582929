# The two commands: `make demo` (the main job) and `make test` (the suite).
# Both bootstrap .venv on first use, and again whenever pyproject.toml or
# constraints.txt change.
#   PYTHON=python3.12 make test      pick the interpreter (3.10-3.12)
#   EXTRAS=torch,tf,dev make test    without a framework (e.g. MXNet on Apple silicon)
#   FRAMEWORKS=torch,tf make demo    compare fewer frameworks

PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= all,dev
FRAMEWORKS ?= torch,tf,mx
# The settings of README "What make demo shows": D without batch norm on its input block
# (DCGAN's paper), half as wide as G, and learning at a quarter of G's rate (measured: no
# checkerboard, flat backgrounds), 1,280 steps: SWD ~27-40 and a fifth to a third of the samples
# recognised as shapes by the judge; 10.7 minutes for the three on 2 AVX2 cores (README).
# `make demo DEMO_EPOCHS=50` trains ten times as long (12,800 steps): plain shapes (README).
DEMO_EPOCHS ?= 5
DEMO_FLAGS ?= --data shapes --image-size 32 --variant paper --n-g 32 --n-d 16 --batch-size 64 --num-images 16384 --epochs $(DEMO_EPOCHS) --lr-g 0.002 --lr-d 0.0005
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast clean

demo: $(STAMP)
	$(BIN)/python -m common.compare --frameworks $(FRAMEWORKS) $(DEMO_FLAGS) --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# Two test processes (pytest-xdist), one test file each at a time, the longest
# files first (tests/conftest.py's order, kept by --no-loadscope-reorder): the suite
# is mostly interpreter start-ups, imports and subprocesses, so the second core pays.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# The quick subset while developing (no subprocesses, no long training): about a minute.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	echo "$(EXTRAS)" > $@

clean:
	rm -rf $(VENV) .pytest_cache

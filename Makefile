# The two commands: `make demo` (the main job) and `make test` (the suite).
# Both bootstrap .venv on first use, and again whenever pyproject.toml or
# constraints.txt change.
#   PYTHON=python3.12 make test      pick the interpreter (3.10-3.12)
#   EXTRAS=torch,tf,dev make test    without a framework (e.g. MXNet on Apple silicon)

PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= all,dev
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test clean

demo: $(STAMP)
	$(BIN)/python -m common.demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	echo "$(EXTRAS)" > $@

clean:
	rm -rf $(VENV) .pytest_cache

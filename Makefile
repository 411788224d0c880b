# sonolab: `make demo [TASK=tagging|sed|asc|strong|all]` trains, tests and predicts a task on the demo data (default:
# tagging, the quickest); `make test` runs the test suite.
# Both create .venv on first use. On a GPU node with its own CUDA torch, use
#   make demo VENV_FLAGS=--system-site-packages     (the node's torch is found and kept)
PYTHON ?= python3
VENV ?= .venv
VENV_FLAGS ?=
TORCH_SPEC ?= torch==2.13.0
DEMO_DIR ?= demo_data
DEMO_SEED ?= 0
TASK ?= tagging
PY := $(VENV)/bin/python
SONOLAB := $(VENV)/bin/sonolab
export JSONARGPARSE_DEPRECATION_WARNINGS := off

.PHONY: install demo demo-data test benchmarks clean

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools<82" wheel
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed

$(DEMO_DIR)/.done: $(VENV)/.installed
	$(SONOLAB) demo-data --seed $(DEMO_SEED) --out $(DEMO_DIR)
	touch $@

demo-data: $(DEMO_DIR)/.done

demo: $(DEMO_DIR)/.done
	$(SONOLAB) demo --task $(TASK)

test: $(VENV)/.installed
	$(PY) -m pytest

benchmarks: $(VENV)/.installed
	for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(DEMO_DIR) logs

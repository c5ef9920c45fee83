# Two commands for a fresh clone: `make demo` and `make test` (see README). Both create or reuse .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch pair that imports together with ComfyUI on this machine kind (both wheels ship on local disk).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.md-installed
ARGS ?=

.PHONY: install test test-fast demo clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml requirements.txt tests/harness/provision.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[test]'
	$(PY) tests/harness/provision.py
	touch $(STAMP)

# Every tier: unit, quality and end-to-end (real ComfyUI). Pass pytest arguments with ARGS='...'.
test: install
	OMP_NUM_THREADS=1 $(PY) -m pytest $(ARGS)

# The fast tier alone (no ComfyUI server), for development.
test-fast: install
	OMP_NUM_THREADS=1 $(PY) -m pytest -m "not e2e" $(ARGS)

demo: install
	$(PY) -m tests.harness.demo

clean-venv:
	rm -rf $(VENV)

# Two commands for a fresh clone: `make demo` and `make test` (see README). Both create or reuse .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch pair that imports together with ComfyUI on this machine kind (both wheels ship on local disk).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.md-installed
ARGS ?=

.PHONY: install chromium test test-fast demo demo-wan clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml requirements.txt tests/harness/provision.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[test]'
	$(PY) tests/harness/provision.py
	touch $(STAMP)

# The browser tier drives Debian's Chromium (Playwright's own browser download is not reachable here).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "Install Debian's chromium (sudo apt-get install chromium) for the browser tests." >&2; exit 1; fi; }

# Every tier: unit, quality and end-to-end (real ComfyUI). Pass pytest arguments with ARGS='...'.
test: install chromium
	OMP_NUM_THREADS=1 $(PY) -m pytest $(ARGS)

# The fast tier alone (no ComfyUI server), for development.
test-fast: install
	OMP_NUM_THREADS=1 $(PY) -m pytest -m "not e2e" $(ARGS)

# The main demo on ShapesT2V; demo-wan runs the same on ShapesWan (the real Wan classes).
demo: install
	$(PY) -m tests.harness.demo --model shapes_t2v

demo-wan: install
	$(PY) -m tests.harness.demo --model shapes_wan

clean-venv:
	rm -rf $(VENV)

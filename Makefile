# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out
REPORT_OUT ?= report
REPORT_FLAGS ?=

# Nothing reaches the network at run time: weights and data come from local paths.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export PYTHONUNBUFFERED := 1

MIN_VENV ?= .venv-min

.PHONY: venv test test-min lint docs docs-check demo demo-ti bench gpu-check report report-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/render_docs.py --check
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 -q

# The README's and docs' figures are rendered from docs/results/ (written by the bench commands):
# `make docs` renders them again (and redraws the PNG figures), `make docs-check` fails on a difference.
docs: $(STAMP)
	$(BIN)/python scripts/render_docs.py

docs-check: $(STAMP)
	$(BIN)/python scripts/render_docs.py --check

# The suite on the oldest versions pyproject.toml allows (every "name>=X" pinned to X), in a
# second environment. Not part of CI; it needs the package index to hold those versions.
test-min:
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	sed -n 's/^ *"\([A-Za-z0-9_.-]*\)>=\([0-9][0-9.]*\)".*/\1==\2/p' pyproject.toml > $(MIN_VENV)/floors.txt
	$(MIN_VENV)/bin/python -m pip install --quiet -c $(MIN_VENV)/floors.txt -e '.[test]'
	$(MIN_VENV)/bin/python -m pip freeze | grep -iE '^(torch|torchvision|transformers|diffusers)=='
	OMP_NUM_THREADS=1 $(MIN_VENV)/bin/python -m pytest -n 2 -q -p no:cacheprovider

demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python scripts/demo.py --out $(DEMO_OUT)

# Textual Inversion learning a concept on the CPU (see the README's Problem 3): the shipped world
# is written once to $(DEMO_TI_OUT)/world and reused by later runs (so are the graders and tokens).
DEMO_TI_OUT ?= demo_ti_out
demo-ti: $(STAMP)
	OMP_NUM_THREADS=2 $(BIN)/python bench/bench_ti_learns.py --out $(DEMO_TI_OUT)

bench: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python bench/run_all.py

# One prepared check of every problem on a CUDA GPU (full-size networks, random weights), at most
# 8 minutes: figures in $(GPU_CHECK_OUT)/gpu_check.json and gpu_check.md (see the README's "GPU check").
GPU_CHECK_OUT ?= gpu_check_out
gpu-check: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python bench/gpu_check.py --out $(GPU_CHECK_OUT)

# The homework report from what the commands wrote (the checkout's output folders, then demo_out/).
report: $(STAMP)
	$(BIN)/python -m dlcv.report --out $(REPORT_OUT) $(REPORT_FLAGS)

# The report opened in headless Chromium: every image loads, no console error, a screenshot.
report-check: report
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	    [ -n "$$CHROMIUM" ] || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        echo "installing Debian's chromium package (apt-get install -y chromium)"; \
	        apt-get install -y --no-install-recommends chromium; \
	    else \
	        echo "report-check needs Chromium: sudo apt-get install -y chromium (Debian's package)," \
	             "or set CHROMIUM=/path/to/chrome"; exit 2; \
	    fi; }
	$(BIN)/python -m pip install --quiet 'websocket-client>=1.6'
	$(BIN)/python bench/check_report_browser.py $(REPORT_OUT)/index.html

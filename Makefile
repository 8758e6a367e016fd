# make demo: set up .venv (torch==2.13.0 CPU first, then mnemonet) and run the main job.
# make test: set up .venv and run lint + the test suite, with kernels and again with MNEMONET_KERNELS=0.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install lint bench

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/mnemonet demo

lint: install
	$(VENV)/bin/ruff check src tests benchmarks experiments
	$(VENV)/bin/ruff format --check src tests benchmarks experiments

test: lint
	$(PY) -m pytest
	MNEMONET_KERNELS=0 $(PY) -m pytest  # the readable equations alone pass too

bench: install
	$(PY) benchmarks/bench_all.py

# The two commands: `make pipeline` (set up + dvc repro) and `make test` (set up + pytest).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev

FUZZ_EXAMPLES ?= 5000

.PHONY: setup pipeline test bench fuzz clean-venv

$(BIN)/.installed-$(EXTRAS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	$(BIN)/python -m pip check
	touch $@

setup: $(BIN)/.installed-$(EXTRAS)

# Stages run as `python -m catsdogs.stages <name>`: the venv's bin goes first on PATH.
pipeline: setup
	PATH="$(abspath $(BIN)):$$PATH" dvc repro $(STAGES)

test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

# Every benchmark side by side: reports/benchmarks.json and .md (BENCH_ARGS="--quick" for a smoke run).
bench: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m benchmarks $(BENCH_ARGS)

# The image fuzz test at length (CI runs 300 repeatable cases; this draws fresh ones each time).
fuzz: setup
	CATSDOGS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest \
		tests/test_fuzz_images.py -p no:cacheprovider --hypothesis-show-statistics $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)

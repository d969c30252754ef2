# The two commands: `make pipeline` (set up + dvc repro) and `make test` (set up + pytest).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev

FUZZ_EXAMPLES ?= 5000

.PHONY: setup pipeline test test-unit params bench fuzz clean-venv

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

# The fast tier only (tests/unit: in-process code, no dvc, no stage subprocess): a few minutes.
test-unit: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# params.yaml from the schema (catsdogs/core/params.py, catsdogs/models/recipes/): after changing a default.
params: setup
	$(BIN)/python -m catsdogs.params_file

# Every benchmark side by side: reports/benchmarks.json and .md (BENCH_ARGS="--quick" for a smoke run).
bench: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m benchmarks $(BENCH_ARGS)

# The image fuzz test at length (CI runs 300 repeatable cases; this draws fresh ones each time).
fuzz: setup
	CATSDOGS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest \
		tests/integration/test_fuzz_images.py -p no:cacheprovider --hypothesis-show-statistics $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)

# The two commands: `make pipeline` (set up + dvc repro) and `make test` (set up + pytest).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extras to install beside the core, comma-separated: dev (tests), s3, gpu (e.g. EXTRAS=gpu,s3).
EXTRAS ?= dev
comma := ,
EXTRA_FLAGS := $(foreach extra,$(subst $(comma), ,$(EXTRAS)),--extra $(extra))
# uv lives beside the environment, not in it: `uv sync` keeps the environment exactly as uv.lock says. It
# trusts the system's certificates, as pip does (a proxy's own CA), and never downloads a Python.
UV := $(VENV)/uv/bin/uv
UV_ENV := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never UV_SYSTEM_CERTS=1

FUZZ_EXAMPLES ?= 5000

.PHONY: setup pipeline test test-unit lint params lock upgrade bench fuzz clean-venv

$(UV): requirements-uv.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m ensurepip --default-pip >/dev/null  # uv sync drops pip from the environment: bring it back
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps --upgrade --target $(VENV)/uv -r requirements-uv.txt
	touch $@

# The environment exactly as uv.lock pins it, every file hash-checked; --locked stops when pyproject.toml
# changed without `make lock`, so what is installed is always what is committed. --compile-bytecode as pip
# does: where PYTHONDONTWRITEBYTECODE is set (CI), every process would compile TensorFlow's sources again.
$(BIN)/.installed-$(subst $(comma),-,$(EXTRAS)): pyproject.toml uv.lock $(UV)
	$(UV_ENV) $(UV) sync --locked --quiet --compile-bytecode $(EXTRA_FLAGS) --python $(BIN)/python
	$(UV_ENV) $(UV) pip check --quiet --python $(BIN)/python
	rm -f $(BIN)/.installed-*
	touch $@

setup: $(BIN)/.installed-$(subst $(comma),-,$(EXTRAS))

# Stages run as `python -m catsdogs.stages <name>`: the venv's bin goes first on PATH.
# The sweep first: what killed runs left, even where DVC will restore every stage and run none.
pipeline: setup
	$(BIN)/python -m catsdogs.stages --sweep
	PATH="$(abspath $(BIN)):$$PATH" dvc repro $(STAGES)

# Tests run in parallel (pytest-xdist), a worker per core and at most 4: most of their time is stage
# processes starting TensorFlow one core at a time. TEST_WORKERS=0 runs them in this process (pdb, -x).
TEST_WORKERS ?= auto
XDIST := -n $(TEST_WORKERS) --maxprocesses=4

test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

# The fast tier only (tests/unit: in-process code, no dvc, no stage subprocess): a few minutes.
test-unit: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(XDIST) tests/unit $(PYTEST_ARGS)

# uv.lock from pyproject.toml after a dependency edit (the rest stays pinned); `make upgrade`: everything to the
# newest release the bounds allow. Either way the diff of uv.lock is what a reviewer reads.
lock: $(UV)
	$(UV_ENV) $(UV) lock

upgrade: $(UV)
	$(UV_ENV) $(UV) lock --upgrade

# Undefined names, unused imports, syntax errors, import order ([tool.ruff] in pyproject.toml).
lint: setup
	$(BIN)/ruff check catsdogs tests benchmarks

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

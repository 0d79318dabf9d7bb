# The README's two commands are `make run` and `make test`; everything else is a helper.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
TEST_STAMP := $(VENV)/.installed-test-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint unit integration e2e bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: imagegate needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per pyproject.toml content: editing dependencies reinstalls, nothing else does.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The suite also runs the local diffusers adapter (on a tiny pipeline it builds), so the
# test path adds the diffusers extra; run and the helpers install only what they need.
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,diffusers]'
	touch $(TEST_STAMP)

# serve applies the migrations itself before it starts.
run: $(STAMP)
	$(BIN)/imagegate serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: $(TEST_STAMP) lint
	$(BIN)/pytest -q --durations=15 tests

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

bench: $(STAMP)
	$(BIN)/python bench/create_latency.py
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) .imagegate .mypy_cache .ruff_cache .pytest_cache

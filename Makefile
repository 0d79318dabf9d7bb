# The README's two commands are `make run` and `make test`; everything else is a helper.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv

# The locks, written by `make lock` from pyproject.toml and committed: exact versions
# with their hashes, so a fresh machine installs what CI tested.
#   requirements/tools.txt  uv, the installer (pip bootstraps it, hash-checked)
#   requirements/run.txt    what `make run` needs, on any platform
#   requirements/test.txt   the same pins plus the dev, diffusers and tracing extras, for CPython
#                           3.11 on x86_64 Linux: torch is the CPU build that these
#                           machines keep in /opt/wheels (pip's find-links there)
# One stamp per lock and pyproject.toml content: a new lock reinstalls, nothing else does.
lock_sum    = $(shell cat $(1) pyproject.toml | cksum | cut -d' ' -f1)
STAMP      := $(VENV)/.installed-run-$(call lock_sum,requirements/run.txt)
TEST_STAMP := $(VENV)/.installed-test-$(call lock_sum,requirements/test.txt)
# Bytecode compiled at install time (in parallel, by uv) instead of at the first import:
# the first `make run` then starts in about a second, not ten.
INSTALL    := $(UV) pip install --python $(BIN)/python --quiet --compile-bytecode
COMPILE    := $(UV) pip compile --quiet --generate-hashes --python-version 3.11 \
              --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)

.PHONY: run test lint unit integration e2e bench lock clean

$(UV): requirements/tools.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: imagegate needs Python 3.11 or newer (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/tools.txt
	touch $(UV)

# Hash-checked from the lock, then the project itself (no dependencies of its own: the
# lock has them all).
$(STAMP): $(UV) requirements/run.txt pyproject.toml
	$(INSTALL) --require-hashes -r requirements/run.txt
	$(INSTALL) --no-deps -e .
	rm -f $(VENV)/.installed-run-*
	touch $(STAMP)

# The suite also runs the local diffusers adapter (on a tiny pipeline it builds), so the
# test lock adds the diffusers extra (and tracing, for its exporter test); run and the
# helpers install only what they need.
$(TEST_STAMP): $(UV) requirements/test.txt pyproject.toml
	$(INSTALL) --require-hashes -r requirements/test.txt
	$(INSTALL) --no-deps -e .
	rm -f $(VENV)/.installed-test-*
	touch $(TEST_STAMP)

# serve applies the migrations itself before it starts.
run: $(STAMP)
	$(BIN)/imagegate serve

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# Two workers (the machine's two cores), whole files to one worker each (a module's
# servers are started once); each worker has its own servers, ports, data dirs and
# PostgreSQL databases (tests/support). The slowest tests are printed at the end.
# The suite starts a few hundred server processes: their imports of our own modules
# read bytecode compiled once here, even where PYTHONDONTWRITEBYTECODE is set.
test: $(TEST_STAMP) lint
	$(BIN)/python -m compileall -q src tests bench >/dev/null
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=30 tests

unit: $(TEST_STAMP)
	$(BIN)/pytest -q tests/unit

bench: $(STAMP)
	$(BIN)/python bench/create_latency.py
	$(BIN)/python bench/throughput.py

# After editing dependencies in pyproject.toml: rewrite the locks, keeping every pin that
# still fits (`make lock UPGRADE=1` moves everything to the newest versions allowed).
# The test lock takes run.txt as constraints, so both install the same versions.
lock: $(UV)
	$(COMPILE) --universal requirements/tools.in -o requirements/tools.txt
	$(COMPILE) --universal pyproject.toml -o requirements/run.txt
	$(COMPILE) pyproject.toml --extra dev --extra diffusers --extra tracing -c requirements/run.txt \
	    --python-platform x86_64-manylinux_2_28 --find-links /opt/wheels --emit-find-links \
	    -o requirements/test.txt

clean:
	rm -rf $(VENV) .imagegate .mypy_cache .ruff_cache .pytest_cache

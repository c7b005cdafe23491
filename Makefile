# Every target bootstraps .venv on first use; nothing outside it is touched.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install dev test lint fmt lock clean

help:
	@echo "make install  create .venv and install Shopweave with its dev extras"
	@echo "make dev      run the whole system (Temporal, PostgreSQL, Redis, worker, API)"
	@echo "make test     run the whole test suite on three workers (TEST_WORKERS=0: in one process)"
	@echo "make lint     ruff check + ruff format --check + mypy"
	@echo "make fmt      ruff format + ruff check --fix"
	@echo "make lock     re-pin constraints.txt from a fresh resolve"

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Shopweave needs Python 3.11 or newer (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	exec $(BIN)/shop dev $(ARGS)

# The suite runs on TEST_WORKERS pytest-xdist workers (three by default), each with
# servers of its own on ports of its own (tests/conftest.py), sharing it by whole test
# files, the `shop dev` ones all on one worker (tests/parallel.py); TEST_WORKERS=0, or
# ARGS="-n 0", runs it in one process. A worker that crashes is not replaced: its test is
# reported as crashed and the others finish the run (a replacement was given no work by
# the file scheduler, and the run waited for it until killed).
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --max-worker-restart=0 $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-resolve every dependency to its newest allowed version and pin the result.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^shopweave' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

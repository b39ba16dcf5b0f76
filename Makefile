# Two commands on a fresh machine with only python3 and make:
#   make run    the product on its embedded default (SQLite queue, outbox folder, no accounts)
#   make test   the whole test suite, lint (ruff) and type check (mypy)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit soak bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) scripts/run_local.py

test: lint typecheck unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest

# Benchmarks and the long soak are separate commands, never part of `make test`.
bench: $(STAMP)
	$(PY) scripts/bench.py $(ARGS)

soak: $(STAMP)
	$(PY) scripts/soak.py $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

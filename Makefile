# Two commands on a fresh machine with only python3 and make:
#   make run    the product on its embedded default (SQLite queue, outbox folder, no accounts)
#   make test   the whole test suite, lint (ruff) and type check (mypy)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit soak bench bench-embedded clean

# The first run installs for about a minute: say so, and let pip show each package it fetches.
$(STAMP): pyproject.toml constraints.txt
	@echo "Installing notion-queue and its dependencies into $(VENV) (first run only, about a minute)…"
	@echo "[1/3] creating $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "[2/3] upgrading pip"
	$(PY) -m pip install --quiet --upgrade pip
	@echo "[3/3] installing the pinned dependencies (constraints.txt) and notion-queue"
	$(PY) -m pip install -c constraints.txt -e '.[dev]'
	touch $(STAMP)
	@echo "Installed. Later runs start at once (until pyproject.toml or constraints.txt change)."

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

# Just the embedded default's section (drain, intake, first email, RSS): ARGS="--quick" too.
bench-embedded: $(STAMP)
	$(PY) scripts/bench.py --embedded-only $(ARGS)

soak: $(STAMP)
	$(PY) scripts/soak.py $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

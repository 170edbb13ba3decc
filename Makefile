# Two entry points for a fresh machine: `make up` and `make test`. Each bootstraps .venv itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: up test lint types imports unit integration e2e bench-dataplane bench-federation bench-placement clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(VENV)/.installed $@

up: $(VENV)/.installed
	$(BIN)/isthmus up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

test: lint types imports
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q -m unit

integration: $(STAMP)
	$(BIN)/pytest -q -m integration

e2e: $(STAMP)
	$(BIN)/pytest -q -m e2e

bench-dataplane: $(STAMP)
	$(BIN)/python -m bench.dataplane

bench-federation: $(STAMP)
	$(BIN)/python -m bench.convergence

bench-placement: $(STAMP)
	$(BIN)/python -m bench.placement

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

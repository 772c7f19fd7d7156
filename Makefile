# Two commands set up everything on a fresh machine:
#   make serve   install into .venv, migrate the SQLite file, serve on 127.0.0.1:8080
#   make test    install into .venv, start PostgreSQL if needed, lint, type-check, test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test install bench

$(BIN)/.installed: pyproject.toml sdk/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e './sdk[agent,hold]'
	touch $@

install: $(BIN)/.installed

serve: $(BIN)/.installed
	$(BIN)/ciuic serve

test: $(BIN)/.installed
	scripts/test

bench: $(BIN)/.installed
	$(BIN)/python bench/decide.py
	$(BIN)/python bench/forecast.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/burst.py

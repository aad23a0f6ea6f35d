# `make run` serves the app with its demo data; `make test` runs the checks and the suite. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HOST ?= 127.0.0.1
export PORT ?= 8000

.PHONY: run test lint messages venv-run venv-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-run: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed-run

venv-run: $(VENV)/.installed-run
venv-dev: $(VENV)/.installed-dev

run: venv-run
	@bash scripts/run.sh

test: venv-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Re-extract and compile translations (needs GNU gettext); the compiled files are committed.
messages: venv-dev
	$(BIN)/python manage.py makemessages --locale zh_Hans --no-obsolete --ignore ".venv/*"
	$(BIN)/python manage.py compilemessages --locale zh_Hans --ignore ".venv/*"

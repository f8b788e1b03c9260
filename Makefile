# Every target installs what it needs from uv.lock into .venv first (uv comes from PyPI).
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo .venv-uv/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install demo test test-slow test-all lint bench notebooks clean

$(UV):
	python3 -m venv .venv-uv && .venv-uv/bin/pip install --quiet uv

# Bytecode compiled once here: a job that compiles dlt & co. at every start (no writable
# __pycache__, or PYTHONDONTWRITEBYTECODE) spends ~3 s of CPU more per run.
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --extra dev --compile-bytecode --quiet
	$(PY) -m compileall -q pipelines >/dev/null
	touch $@

install: $(VENV)/.synced

demo: install
	$(VENV)/bin/desk-sessions demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

test: install lint
	$(PY) -m pytest -q

test-slow: install  # the long chaos, crash and scale cases only
	$(PY) -m pytest -q -m slow

test-all: test test-slow

bench: install
	$(PY) benchmarks/run.py
	$(PY) benchmarks/bench_receiver.py
	$(PY) benchmarks/bench_plan_replay.py

notebooks: install  # refresh each .ipynb from its reviewed py:percent script
	$(VENV)/bin/jupytext --sync notebooks/*.py

clean:
	rm -rf $(VENV) .venv-uv .pytest_cache demo.duckdb

# Every target installs what it needs from uv.lock into .venv first (uv comes from PyPI).
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo .venv-uv/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install browser demo check test test-slow test-all coverage lint bench soak notebooks chart clean

$(UV):
	python3 -m venv .venv-uv && .venv-uv/bin/pip install --quiet uv

# Bytecode compiled once here: a job that compiles dlt & co. at every start (no writable
# __pycache__, or PYTHONDONTWRITEBYTECODE) spends ~3 s of CPU more per run.
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --extra dev --compile-bytecode --quiet
	$(PY) -m compileall -q pipelines >/dev/null
	touch $@

install: $(VENV)/.synced

# Headless Chromium (Debian's package) for the tests that render a page in a real browser.
# Idempotent: nothing to do when `chromium` is there; as root it is installed; otherwise
# those tests skip and say why.
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || \
		 (apt-get update -qq && apt-get install -y --no-install-recommends chromium >/dev/null)) \
		&& echo "installed chromium"; \
	else echo "chromium missing and not root: the browser tests will skip"; fi

demo: install
	$(VENV)/bin/desk-sessions demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

# The developer's loop (at most 3 minutes on 2 cores): lint, the import contracts, the unit
# tests and one notebook on one shape: the tests marked `check` (tests/conftest.py, CHECK).
check: install lint
	$(PY) -m pytest -q -m 'check and not slow'

# The suite on TEST_WORKERS processes (pytest-xdist): a module's tests that share a costly
# fixture stay on one (tests/conftest.py); `make test TEST_WORKERS=1` runs them in one.
# Three on 2 cores: a third worker fills the time the others wait on child processes
# (quiet fresh clones: make test 5:42 and 6:08 with 3, pytest 326 and 351 s; pytest 360 s
# with 4 in the second clone).
TEST_WORKERS ?= 3
test: install lint browser
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

test-slow: install browser  # the long chaos, crash and scale cases only
	$(PY) -m pytest -q -m slow

test-all: test test-slow

# The suite under coverage, lines and branches, child processes too (the CLI's, the
# receiver's, the notebooks' kernels: pyproject's [tool.coverage.run]). make test's selection;
# COVERAGE_TESTS="-m 'slow or not slow'" for the slow lane's too.
coverage: install
	$(VENV)/bin/coverage erase
	$(VENV)/bin/coverage run -m pytest -q -n $(TEST_WORKERS) --dist loadgroup $(COVERAGE_TESTS)
	$(VENV)/bin/coverage combine -q
	$(VENV)/bin/coverage report --skip-covered --sort=cover
	$(VENV)/bin/coverage json -q -o coverage.json
	@$(PY) -c "import json; t = json.load(open('coverage.json'))['totals']; \
	print(f\"lines {t['covered_lines']}/{t['num_statements']} \
	({100 * t['covered_lines'] / t['num_statements']:.1f}%), branches \
	{t['covered_branches']}/{t['num_branches']} \
	({100 * t['covered_branches'] / t['num_branches']:.1f}%)\")"

bench: install
	$(PY) benchmarks/run.py
	$(PY) benchmarks/bench_receiver.py
	$(PY) benchmarks/bench_plan_replay.py
	$(PY) benchmarks/bench_plan_replay.py --max-occupancy 1
	$(PY) benchmarks/bench_plan_replay.py --unnamed

soak: install  # a day of minute-by-minute runs of the real CLI, noon to noon (about 85 min on 2 cores)
	$(PY) benchmarks/soak.py --runs 1440 --start-hour 12

notebooks: install  # refresh each .ipynb from its reviewed py:percent script
	$(VENV)/bin/jupytext --sync notebooks/*.py

chart: install  # the README's chart: the queue notebook on demo.duckdb (make demo first)
	$(PY) docs/chart.py

clean:
	rm -rf $(VENV) .venv-uv .pytest_cache demo.duckdb demo.duckdb.lock demo.duckdb.spool \
		demo.read demo.read.duckdb .coverage coverage.json

# neon-elt: every target bootstraps .venv on first use, so a fresh clone needs only Python 3.11+ and make.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
# Prefer a uv on PATH; otherwise install the pinned one into the venv.
UV := $(shell command -v uv 2>/dev/null || echo $(BIN)/uv)
STAMP := $(VENV)/.synced-$(shell cat pyproject.toml uv.lock | cksum | cut -d' ' -f1)
# The optional group `dashboard` (marimo, ibis): make dashboard, make notebook and make test
# install it on first use; make env leaves it out.
DASHBOARD_STAMP := $(VENV)/.dashboard-synced-$(shell cat pyproject.toml uv.lock | cksum | cut -d' ' -f1)

export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

# --compile-bytecode: dbt imports ~1,400 modules on every start; where PYTHONDONTWRITEBYTECODE is
# set (containers, CI) nothing caches them, and each dbt call pays ~4 s more.
$(STAMP): pyproject.toml uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@command -v uv >/dev/null 2>&1 || test -x $(BIN)/uv || { $(BIN)/python -m ensurepip -q 2>/dev/null; $(BIN)/python -m pip install -q "uv==$(UV_VERSION)"; }
	$(UV) sync --frozen --inexact --all-groups --no-group dashboard --compile-bytecode --python $(BIN)/python
	@rm -f $(VENV)/.synced-*; touch $@

$(DASHBOARD_STAMP): $(STAMP)
	$(UV) sync --frozen --inexact --all-groups --compile-bytecode --python $(BIN)/python
	@rm -f $(VENV)/.dashboard-synced-*; touch $@

.PHONY: help env
# The descriptions name $(PORT) for the port in use: sed fills it in.
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}' | sed 's/\$$(PORT)/$(PORT)/g'

env: $(STAMP) ## create or refresh the Python environment (.venv)

# Settings come from the environment (NEON_API_KEY, NEON_API_BASE_URL, NEON_DUCKDB_PATH); see docs/configuration.md.
PORT ?= 8080
# make test runs the suite's modules on this many pytest-xdist workers (1: one after another).
# Many tests wait on a subprocess, a server or the simulator's clock, so two keep two cores busy.
TEST_WORKERS ?= 2
NEON := $(BIN)/neon-elt
# TARGET=postgres (or NEON_ELT_TARGET=postgres in the environment) loads and builds into PostgreSQL
# (NEON_POSTGRES_URL or PG* variables); DuckDB is the default.
TARGET ?= $(or $(NEON_ELT_TARGET),duckdb)
export NEON_ELT_TARGET := $(TARGET)
# Debian packages the PostgreSQL, report and neonctl tests need; `make system-deps` installs them.
# npm counts as present when the command is: a Node.js from elsewhere (NodeSource's, say) ships
# its own npm and conflicts with Debian's package.
SYSTEM_PACKAGES := postgresql chromium npm

# make exits 0, or 2 for any failure: the runner's own codes (1 a failed run, 2 configuration,
# 3 another run holds the warehouse) reach the caller only from .venv/bin/neon-elt, which
# schedules call (README: Run it on a schedule). make's last line, `Error N`, names the code.
.PHONY: elt extract plan transform demo docs report dashboard notebook simulator test test-fast system-deps lint bench clean
elt: $(STAMP) ## extract from the Neon API, then dbt build (needs NEON_API_KEY)
	@$(NEON) elt

extract: $(STAMP) ## extract from the Neon API into the raw dataset neon_api_data
	@$(NEON) extract

plan: $(STAMP) ## print what the next extract would re-read from the API, and why (loads nothing)
	@$(NEON) extract --plan

transform: $(STAMP) ## dbt build: staging and marts, with their tests
	@$(NEON) transform

demo: $(STAMP) ## the whole pipeline against the bundled Neon API simulator (no key needed)
	@$(NEON) demo

docs: $(STAMP) ## dbt docs generate, then serve on 127.0.0.1:$(PORT)
	@$(NEON) docs --port $(PORT)

report: $(STAMP) ## write reports/neon_estate_report.html from the marts (self-contained, no network)
	@$(NEON) report

# The marimo apps take --port only from a PORT= given on the command line or in the environment;
# else their own defaults (2718 for the dashboard, as dlt's, and 2719 for the notebook).
MARIMO_PORT = $(if $(filter file,$(origin PORT)),,--port $(PORT))

dashboard: $(DASHBOARD_STAMP) ## dlt's dashboard (`dlt pipeline neon_api_pipeline show`) on the warehouse, read-only
	@$(NEON) dashboard $(MARIMO_PORT)

notebook: $(DASHBOARD_STAMP) ## the analysts' marimo notebook (notebooks/neon_estate.py) on the warehouse, read-only
	@$(NEON) notebook $(MARIMO_PORT)

simulator: $(STAMP) ## run the Neon API simulator in the foreground (PORT=, PRESET=)
	@$(BIN)/neon-simulator --port $(PORT) --preset $${PRESET:-demo}

# PYTEST_ARGS: more pytest arguments for both (`make test PYTEST_ARGS=tests/dbt`: one area's folder).
PYTEST_ARGS ?=
# PYTHONDONTWRITEBYTECODE emptied: pytest keeps the test modules it rewrote for its asserts as
# bytecode (in __pycache__, ignored by git); with it set, every worker rewrites them all on every
# run, and collecting takes 6 s instead of 3.5 s.
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/pytest
test: $(DASHBOARD_STAMP) ## the whole suite: pytest (simulator, extract, dbt build and tests, SQL and Python lint), on TEST_WORKERS workers
	@$(PYTEST) -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: $(STAMP) ## unit, structure and lint tests, no pipeline, dbt build or server: the inner loop (make bench times it against 45 s)
	@$(PYTEST) -m "not slow" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

system-deps: ## install Debian's postgresql, chromium and npm (as root, or with sudo) for the whole test suite
	@missing=$$(for p in $(SYSTEM_PACKAGES); do \
		{ [ $$p = npm ] && command -v npm >/dev/null; } && continue; \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		echo "installing Debian packages: $$missing"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The same checks as tests/project/test_lint.py, which make test runs.
lint: $(STAMP) ## sqlfluff over the dbt SQL, ruff check and ruff format --check over the Python
	@$(BIN)/sqlfluff lint dbt_project/models dbt_project/macros dbt_project/tests
	@$(BIN)/ruff check extract tests bench notebooks neon_api_pipeline.py
	@$(BIN)/ruff format --check extract tests bench notebooks neon_api_pipeline.py

bench: $(STAMP) ## benchmarks against the simulator; writes BENCHMARKS.md
	@$(BIN)/python -m bench

# The warehouse stays: make demo and make elt share neon_api_pipeline.duckdb, which may hold a
# real account's history; README says how to start over.
clean: ## remove the environment, build output and reports (the warehouse stays)
	rm -rf $(VENV) .tools dbt_project/target dbt_project/logs reports/*.html
	@rmdir reports 2>/dev/null || true  # the folder the report made, unless it holds files of yours

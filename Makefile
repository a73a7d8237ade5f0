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

export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

$(STAMP): pyproject.toml uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@command -v uv >/dev/null 2>&1 || test -x $(BIN)/uv || { $(BIN)/python -m ensurepip -q 2>/dev/null; $(BIN)/python -m pip install -q "uv==$(UV_VERSION)"; }
	$(UV) sync --frozen --inexact --all-groups --python $(BIN)/python
	@rm -f $(VENV)/.synced-*; touch $@

.PHONY: help env
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

env: $(STAMP) ## create or refresh the Python environment (.venv)

# Settings come from the environment (NEON_API_KEY, NEON_API_BASE_URL, NEON_DUCKDB_PATH); see README.
PORT ?= 8080
NEON := $(BIN)/neon-elt

.PHONY: elt extract transform demo docs simulator test lint bench clean
elt: $(STAMP) ## extract from the Neon API, then dbt build (needs NEON_API_KEY)
	@$(NEON) elt

extract: $(STAMP) ## extract from the Neon API into the raw dataset neon_api_data
	@$(NEON) extract

transform: $(STAMP) ## dbt build: staging and marts, with their tests
	@$(NEON) transform

demo: $(STAMP) ## the whole pipeline against the bundled Neon API simulator (no key needed)
	@$(NEON) demo

docs: $(STAMP) ## dbt docs generate, then serve on 127.0.0.1:$(PORT)
	@$(NEON) docs --port $(PORT)

simulator: $(STAMP) ## run the Neon API simulator in the foreground (PORT=, PRESET=)
	@$(BIN)/neon-simulator --port $(PORT) --preset $${PRESET:-demo}

test: $(STAMP) ## the whole suite: pytest (simulator, extract, dbt build and tests, SQL lint)
	@$(BIN)/pytest

lint: $(STAMP) ## sqlfluff over the dbt models, ruff over the Python
	@$(BIN)/sqlfluff lint dbt_project/models dbt_project/macros dbt_project/tests
	@$(BIN)/ruff check extract tests bench

bench: $(STAMP) ## benchmarks against the simulator; writes BENCHMARKS.md
	@$(BIN)/python -m bench

clean: ## remove the environment, build output and the demo warehouse
	rm -rf $(VENV) .tools dbt_project/target dbt_project/logs

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

# intelshare — one Makefile for setup, code generation, checks and tests.
# Everything installs from nothing into .venv; buf comes from npm at a pinned version.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
BUF_VERSION := 1.75.0
BUF    := .tools/node_modules/.bin/buf
STAMP  := $(VENV)/.installed
# Defined before any rule names it: make expands a rule's prerequisites as it reads it.
BENCH_STAMP := $(VENV)/.bench-installed
SRC    := $(wildcard intelshare node gateway console taxii tests bench deploy)
.DEFAULT_GOAL := setup

# A whole local federation (gateway, three nodes, workers) and a scenario; Ctrl-C stops it.
# Needs only Python 3.11+: it installs what it needs (not buf) into .venv first.
run: $(STAMP)
	$(PY) deploy/local_federation.py

.PHONY: run setup proto proto-check lint format typecheck buflint test bench-smoke check bench run clean

setup: $(STAMP) $(BUF)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

$(BUF):
	mkdir -p .tools
	cd .tools && npm install --silent --no-audit --no-fund --prefix . @bufbuild/buf@$(BUF_VERSION)

# Regenerate the Python stubs from protos/ into intelshare/v1/.
proto: $(STAMP)
	$(PY) -m intelshare._build.genproto --out .

# Generated code must match what the protos produce now.
proto-check: $(STAMP)
	$(PY) -m intelshare._build.genproto --check

format: $(STAMP)
	$(VENV)/bin/ruff format $(SRC)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check $(SRC)
	$(VENV)/bin/ruff check $(SRC)
	# the import structure: layers, independence, no cycles ([tool.importlinter])
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

buflint: $(BUF)
	$(BUF) lint
	$(BUF) format --diff --exit-code
	# wire compatibility with what has landed on main (skipped where main is absent)
	if git rev-parse --verify -q main >/dev/null; then $(BUF) breaking --against '.git#branch=main'; fi

# The main suite, then the benchmarks' smoke tests (marker "bench", deselected from the
# main run by pyproject's addopts) as a step of their own: it installs the bench extra first.
test: $(STAMP)
	$(PY) -m pytest
	$(MAKE) bench-smoke

# Each benchmark in --quick mode, asserting structure only (tests/bench, about 80 s).
bench-smoke: $(BENCH_STAMP)
	$(PY) -m pytest -m bench tests/bench

check: lint typecheck buflint proto-check test

# The bench extra (the TAXII reference server, py-spy) goes into .venv only for the
# benchmarks and their smoke tests; `make setup` does not install it.
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PIP) install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# Every benchmark at reduced sizes (well under an hour on two cores); rewrites
# bench/README.md and bench/results.json, the report of this one run.
# BENCH_ARGS=--full runs the full sizes.
bench: $(BENCH_STAMP)
	$(PY) -m bench.run_all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache

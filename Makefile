# intelshare — one Makefile for setup, code generation, checks and tests.
# Everything installs from nothing into .venv; buf comes from npm at a pinned version.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
BUF_VERSION := 1.75.0
BUF    := .tools/node_modules/.bin/buf
STAMP  := $(VENV)/.installed
SRC    := $(wildcard intelshare node gateway console taxii tests bench deploy)
.DEFAULT_GOAL := setup

# A whole local federation (gateway, three nodes, workers) and a scenario; Ctrl-C stops it.
# Needs only Python 3.11+: it installs what it needs (not buf) into .venv first.
run: $(STAMP)
	$(PY) deploy/local_federation.py

.PHONY: run setup proto proto-check lint format typecheck buflint test check bench run clean

setup: $(STAMP) $(BUF)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# bench: the TAXII peer the benchmark compares against, so its smoke test runs too
	$(PIP) install -q -e '.[dev,bench]'
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

test: $(STAMP)
	$(PY) -m pytest

check: lint typecheck buflint proto-check test

# The bench extra (the TAXII peer, py-spy) goes into .venv only for the benchmarks.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PIP) install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# Every benchmark; rewrites bench/README.md and bench/results.json (about half an hour).
bench: $(BENCH_STAMP)
	$(PY) -m bench.run_all

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache

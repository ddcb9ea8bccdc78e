# Closeloop: `make run` starts everything locally, `make test` runs the whole suite.
# Both install what they need first (uv, then the locked workspace into .venv).

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV_BOOTSTRAP := .cache/uv-$(UV_VERSION)
UV := $(UV_BOOTSTRAP)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	$(PYTHON) -m venv $(UV_BOOTSTRAP)
	$(UV_BOOTSTRAP)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock shared/pyproject.toml $(wildcard services/*/pyproject.toml) $(wildcard tools/*/pyproject.toml)
	$(UV) sync --all-packages --frozen --python $(PYTHON)
	@touch $@

.PHONY: install
install: $(VENV)/.synced ## Install uv and the locked workspace into .venv

.PHONY: system-tools
system-tools: ## Debian packages the tests use: Prometheus and promtool, Chromium (console browser test) and a CJK font
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v chromium >/dev/null && \
		fc-list :lang=zh | grep -q . || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus chromium fonts-wqy-microhei >/dev/null; }

.PHONY: run
run: install ## Start broker, PostgreSQL and all four services (Ctrl-C stops them)
	$(BIN)/closeloop-devstack run

.PHONY: demo
demo: install ## Post demo feedback from every channel to the stack `make run` started
	$(BIN)/closeloop-devstack demo

.PHONY: test
test: install system-tools lint typecheck ## The whole suite: lint, types, unit, integration and end-to-end tests
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: install ## Only the tests that need no broker or database
	$(BIN)/pytest -m "not integration and not e2e" $(PYTEST_ARGS)

.PHONY: eval
eval: install ## Sentiment: evaluate every model on held-out data (table + services/sentiment/eval/results.json)
	UV=$(UV) $(BIN)/python -m closeloop_sentiment.training.eval $(EVAL_ARGS)

.PHONY: train
train: install ## Sentiment: retrain the linear heads from corpora that registry packages ship
	UV=$(UV) $(BIN)/python -m closeloop_sentiment.training.train

.PHONY: bench
bench: install ## Measure the pipeline against ceilings measured in the same run (results/)
	@command -v wrk >/dev/null && command -v hey >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk hey; }
	$(BIN)/closeloop-bench $(BENCH_ARGS)

.PHONY: lint
lint: install ## ruff: lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: format
format: install ## ruff: fix and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: typecheck
typecheck: install ## mypy --strict over every package and the tests
	$(BIN)/mypy shared/src services/ingest/src services/sentiment/src services/alerts/src services/gateway/src tools/devstack/src tools/bench/src tools/cli/src tests

.PHONY: schemas
schemas: install ## Regenerate the published JSON Schemas of the event contract
	$(BIN)/python -m closeloop_shared.schemas shared/schemas

.PHONY: clean
clean: ## Remove local state (var/), caches and test artefacts
	rm -rf var test-artifacts .pytest_cache .mypy_cache .ruff_cache

# The two commands of the README, and their helpers.
#   make up    – install everything, start Kafka + worker + API, stream demo telemetry
#   make test  – install everything, lint, the browser SDK's unit tests, then the test suite
#                against real Kafka/ClickHouse
#   make test-fast – lint and the unit tier only (`pytest -m unit`: the tests that start no
#                process, no Kafka, no browser; docs/tests.md); a few minutes, for while you work

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: up test test-fast lint install kafka clean bench sdk-js oidc-provider xapi-clients

$(BIN)/.installed: pyproject.toml sdk/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e sdk/python
	touch $@

install: $(BIN)/.installed

kafka: install
	$(BIN)/skillstream kafka fetch

up: install kafka
	$(BIN)/skillstream up --demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/skillstream schemas check

# The browser SDK: build dist/ (ES module + IIFE) and run its unit tests (node's own runner).
NODE ?= node
sdk-js:
	cd sdk/js && $(NODE) build.mjs && $(NODE) --test test/

# The sign-in tests' OpenID provider (npm's oidc-provider, pinned by its lock file).
NPM ?= npm
tests/oidc/node_modules/.package-lock.json: tests/oidc/package-lock.json
	cd tests/oidc && $(NPM) ci --no-audit --no-fund

oidc-provider: tests/oidc/node_modules/.package-lock.json

# The xAPI tests' client and validator test cases (npm's @xapi/xapi, xapi-validation).
tests/xapi/node_modules/.package-lock.json: tests/xapi/package-lock.json
	cd tests/xapi && $(NPM) ci --no-audit --no-fund

xapi-clients: tests/xapi/node_modules/.package-lock.json

test: install kafka lint sdk-js oidc-provider xapi-clients
	$(BIN)/pytest

test-fast: install lint
	$(BIN)/pytest -m unit

# The benchmark suite at medium scale (minutes); SCALE=small|medium|full, ONLY=stream,...
SCALE ?= medium
bench: install kafka
	$(BIN)/skillstream bench --scale $(SCALE) $(if $(ONLY),--only $(ONLY))

clean: install
	$(BIN)/skillstream reset --yes

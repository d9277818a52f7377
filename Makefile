# The two commands of the README, and their helpers.
#   make up    – install everything, start Kafka + worker + API, stream demo telemetry
#   make test  – install everything, lint, run the test suite against real Kafka/ClickHouse

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: up test lint install kafka clean bench

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

kafka: install
	$(BIN)/skillstream kafka fetch

up: install kafka
	$(BIN)/skillstream up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install kafka lint
	$(BIN)/pytest

# The benchmark suite at medium scale (minutes); SCALE=small|medium|full, ONLY=stream,...
SCALE ?= medium
bench: install kafka
	$(BIN)/skillstream bench --scale $(SCALE) $(if $(ONLY),--only $(ONLY))

clean: install
	$(BIN)/skillstream reset --yes

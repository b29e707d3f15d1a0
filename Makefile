# Aviso: the two front-door commands are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: run test bench lint typecheck format schemas infra-up infra-down clean help

help:
	@echo "make run     start Kafka, the database and the three services (ARGS=--no-demo to skip the story)"
	@echo "make test    run the test suite (needs Kafka and PostgreSQL: see README)"
	@echo "make bench   the hot-path benchmark: latency, CPU and statements per notice (ARGS=--short)"
	@echo "make lint    ruff + mypy --strict"
	@echo "make schemas regenerate schemas/json from the event models"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/aviso up $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -rs $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.hot_path $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check services schemas deploy tests benchmarks
	$(BIN)/ruff format --check services schemas deploy tests benchmarks
	$(BIN)/mypy services schemas

format: $(STAMP)
	$(BIN)/ruff format services schemas deploy tests
	$(BIN)/ruff check --fix services schemas deploy tests

schemas: $(STAMP)
	$(BIN)/python -m schemas.generate

infra-up: $(STAMP)
	$(BIN)/python -m deploy.local.stack up --with-postgres

infra-down: $(STAMP)
	$(BIN)/python -m deploy.local.stack down

clean:
	rm -rf var build *.egg-info .pytest_cache .mypy_cache .ruff_cache

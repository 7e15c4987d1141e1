# Everything a fresh clone needs: `make demo` and `make test` set up the virtualenv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck server bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m scripts.demo

# Two processes, each test file whole in one of them (its module fixtures, a Prefect stack, start
# once): most of the suite waits on servers and gateways, not on the CPU.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy flows tasks smspartner scripts

server: $(STAMP)
	$(BIN)/python -m scripts.server

bench: $(STAMP)
	$(BIN)/python bench/numbers.py
	$(BIN)/python bench/fanout.py

clean:
	rm -rf $(VENV) data/reports data/state

# Everything a fresh clone needs: `make demo` and `make test` set up the virtualenv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck server bench clean venv worker-venv lock

venv: $(STAMP)

# Development: the runtime lock and the tools' lock, exact versions checked against their hashes.
$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# A worker machine: the runtime lock only (no pytest, mypy or Playwright on it).
worker-venv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .

# Re-resolve both locks after pyproject.toml changed (needs uv). Versions already in a lock are
# kept; `make lock UV_ARGS=--upgrade` moves them. The dev lock is constrained by the runtime one.
UV ?= uv
lock:
	$(UV) pip compile pyproject.toml --python-version 3.11 --generate-hashes $(UV_ARGS) \
		--custom-compile-command "make lock" -o requirements.lock
	$(UV) pip compile --group pyproject.toml:dev --python-version 3.11 --generate-hashes \
		$(UV_ARGS) -c requirements.lock --custom-compile-command "make lock" \
		-o requirements-dev.lock

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
	$(BIN)/python -m scripts.check_imports

typecheck: $(STAMP)
	$(BIN)/mypy flows tasks smspartner scripts

server: $(STAMP)
	$(BIN)/python -m scripts.server

bench: $(STAMP)
	$(BIN)/python bench/phone_numbers.py
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/pressure.py

clean:
	rm -rf $(VENV) data/reports data/state

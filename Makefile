# The two commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed
ARGS ?=

.PHONY: run test lint format bench bench-quick clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install only when pyproject.toml changed.
$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --progress-bar off -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --progress-bar off -e '.[dev]'
	touch $@ $(RUN_STAMP)

# make run fetches missing OCR weights once when online (offline: OCR reports "unavailable").
run: $(RUN_STAMP)
	SERVE_APP_OCR_DOWNLOAD_MISSING=$${SERVE_APP_OCR_DOWNLOAD_MISSING:-true} \
	  $(VENV)/bin/serve-app run $(ARGS)

test: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest

format: $(DEV_STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(DEV_STAMP)
	$(PY) -m benchmarks.embeddings $(ARGS)

bench-quick: $(DEV_STAMP)
	$(PY) -m benchmarks.embeddings --quick $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The two commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed
ARGS ?=

.PHONY: run test test-unit lint format bench bench-quick clean elixir image image-test image-test-if-possible

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install only when pyproject.toml changed.
$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --progress-bar off -e '.[export]'
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --progress-bar off -e '.[dev]'
	touch $@ $(RUN_STAMP)

# The `export` extra lets the first start export the embedding model to ONNX (once, into
# .data/onnx); the server itself then runs without torch.
run: $(RUN_STAMP)
	$(VENV)/bin/serve-app run $(ARGS)

# The Elixir client's contract test needs `elixir`: install Debian's package when missing and
# possible (root or passwordless sudo); otherwise that test skips and says why.
elixir:
	@command -v elixir >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; \
	  else echo "elixir missing and no root: the Elixir contract test will skip"; exit 0; fi; \
	  command -v apt-get >/dev/null 2>&1 || { echo "no apt-get: the Elixir contract test will skip"; exit 0; }; \
	  echo "installing Debian's elixir for the client contract test ..."; \
	  $$SUDO apt-get update -qq >/dev/null 2>&1; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends elixir >/dev/null \
	    || echo "could not install elixir: the Elixir contract test will skip"; }

test: $(DEV_STAMP) elixir
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest
	@$(MAKE) --no-print-directory image-test-if-possible

# The fast half only: ruff and tests/unit (no Ray, no running server; tests/e2e has those).
test-unit: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest tests/unit

# The image: Dockerfile.gpu built with podman (installed when missing), no registry needed.
image:
	bash image/build.sh

# The built image run as a container, as Fly runs it (see image/check.py; it renders its
# receipts with the project's own generator, so it runs in the venv).
image-test: image $(DEV_STAMP)
	$(PY) image/check.py

# `make test` runs the image test where podman can run (root or passwordless sudo to install
# it, Debian's apt); IMAGE_TEST=0 leaves it out.
IMAGE_TEST ?= 1
image-test-if-possible:
	@if [ "$(IMAGE_TEST)" = 0 ]; then echo "image test left out (IMAGE_TEST=0)"; \
	elif command -v podman >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  { [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; }; then \
	  $(MAKE) --no-print-directory image-test; \
	else echo "image test skipped: podman is missing and cannot be installed here (no root/apt)"; fi

format: $(DEV_STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Every benchmark, a summary.md and plots in benchmarks/results/<timestamp>/ (see README).
bench: $(DEV_STAMP)
	$(PY) -m benchmarks.harness.suite $(ARGS)

bench-quick: $(DEV_STAMP)
	$(PY) -m benchmarks.harness.suite --quick $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Two entry points (see README): `make demo` and `make test`.
# Both create .venv with Python 3.11+ and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { $(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# Chromium (for pages that need a browser) and nginx (a real directory listing in tests)
# come from Debian's packages; Playwright's own browser download is never used.
system-deps:
	@command -v chromium >/dev/null && command -v nginx >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium nginx-light; }

demo: $(VENV)/.installed system-deps
	$(BIN)/leaksentry demo

test: $(VENV)/.installed system-deps
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: $(VENV)/.installed
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

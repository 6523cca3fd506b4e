# Two entry points (see README): `make demo` and `make test`.
# Both create .venv with Python 3.11+ and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench system-deps build-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { $(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }

$(VENV)/.installed: pyproject.toml setup.py pipelines/match/_speedups.c | $(BIN)/python build-deps
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# A C compiler, Python's and OpenSSL's headers build the scanner's optional C path
# (pipelines/match/_speedups.c); without them the install still works, slower.
HAVE_PY_H = $(PYTHON) -c "import os, sysconfig; \
	raise SystemExit(not os.path.exists(sysconfig.get_paths()['include'] + '/Python.h'))"
build-deps:
	@command -v cc >/dev/null && [ -f /usr/include/openssl/sha.h ] && $(HAVE_PY_H) || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq gcc libssl-dev python3-dev; }

# Programs from Debian's packages, one a line: Chromium (pages that need a browser; Playwright's
# own browser download is never used), nginx (a real directory listing in tests), Tesseract
# (OCR of images and scanned pages), mdbtools (Access), antiword/catdoc (Word 97), unrar-free
# and bsdtar (RAR), age (the evidence vault's interop check), redis-server (the cluster tests),
# postgresql (the shared state store's tests start their own server: initdb/pg_ctl in a temp dir).
DEBIAN_PACKAGES = \
	chromium \
	nginx-light \
	tesseract-ocr \
	tesseract-ocr-eng \
	tesseract-ocr-chi-tra \
	mdbtools \
	antiword \
	catdoc \
	unrar-free \
	libarchive-tools \
	age \
	redis-server \
	postgresql
system-deps:
	@dpkg -s $(DEBIAN_PACKAGES) >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEBIAN_PACKAGES); }

demo: $(VENV)/.installed system-deps
	$(BIN)/leaksentry demo

# LEAKSENTRY_REQUIRE_SPEEDUPS: a test fails if the C path did not build
test: $(VENV)/.installed system-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	LEAKSENTRY_REQUIRE_SPEEDUPS=1 $(BIN)/pytest

bench: $(VENV)/.installed
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info pipelines/match/_speedups*.so

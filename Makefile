# anjian: two set-up commands on a fresh clone (Debian 12, Python 3.11, as root):
#   make demo   - create .venv with the base install, generate the demo footage, serve on :8000
#   make test   - install everything the tests need (Debian packages too) and run the whole suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export YOLO_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# Debian packages the tests use: a real RTSP server (gst-rtsp-server under Debian's python3),
# ffmpeg for the decode benchmark's floor, a PostgreSQL server (the tests start a private one),
# headless Chromium and its driver for the dashboard test.
TEST_DEB_PACKAGES := gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly python3-gi ffmpeg postgresql chromium chromium-driver nats-server mosquitto openssl

.PHONY: demo test test-fast lint typecheck system-deps venv-base venv-all clean

demo: venv-base
	$(BIN)/anjian demo

# Two pytest-xdist workers: the suite mostly waits on real servers, decoders and subprocesses, so two
# workers take ~12 minutes on a 2-core machine where one takes ~20. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
TEST_PARALLEL := $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS))

test: system-deps venv-all
	$(BIN)/python -m pytest $(TEST_PARALLEL)

test-fast: venv-all
	$(BIN)/python -m pytest $(TEST_PARALLEL) -m "not slow"

lint: venv-all
	$(BIN)/ruff check cameras pipeline models training datasets service tests

# mypy cannot follow the editable install's import hook (the folders install as anjian.*), so it
# reads them through a tree of links under build/typing/anjian/ (a regular package there, so that
# models/registry/, the shipped models' folder, is not taken for a namespace package beside registry.py).
PACKAGES := cameras datasets models pipeline service training
typecheck: venv-all
	@mkdir -p build/typing/anjian && touch build/typing/anjian/__init__.py && for p in $(PACKAGES); do ln -sfn ../../../$$p build/typing/anjian/$$p; done
	MYPYPATH=build/typing $(BIN)/mypy --no-namespace-packages $(foreach p,$(PACKAGES),-p anjian.$(p))

system-deps:
	@missing=$$(for p in $(TEST_DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BIN)/python:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.base-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.all-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[train,dev,postgres]'
	touch $@ $(VENV)/.base-installed

venv-base: $(VENV)/.base-installed
venv-all: $(VENV)/.all-installed

clean:
	rm -rf $(VENV) .demo .pytest_cache

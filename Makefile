# The README's two commands are `make lab` and `make test`; the rest are helpers.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8888
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with sanitize.cfg --nbval-cell-timeout=600

.PHONY: venv lab test test-unit test-notebooks test-browser notebooks lint lock binder-url bench-attention bench-peers clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

## make lab: open the lessons in JupyterLab (the URL with its token is printed below)
lab: venv
	$(VENV)/bin/jupyter lab --ServerApp.ip=$(HOST) --ServerApp.port=$(PORT) --no-browser $(ROOT_FLAG) \
		--ServerApp.root_dir=$(CURDIR) notebooks/

## make test: unit tests, every notebook through nbval, and the widgets in a real browser
test: venv
	$(PY) -m pytest $(NBVAL) tests notebooks

test-unit: venv
	$(PY) -m pytest tests --ignore=tests/browser

test-notebooks: venv
	$(PY) -m pytest $(NBVAL) notebooks

test-browser: venv
	$(PY) -m pytest tests/browser

## make notebooks: re-execute every lesson in place, refreshing the stored outputs nbval compares
notebooks: venv
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.timeout=600 \
		$(or $(NB),notebooks/*.ipynb)

lint: venv
	$(VENV)/bin/ruff check .

## make lock: refresh requirements.lock from the ranges in pyproject.toml
lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install --quiet --upgrade pip
	build/lock-venv/bin/pip install --quiet -e '.[lab,test,dev]'
	( echo '# Exact versions that `make` installs (pip install -r requirements.lock).'; \
	  echo '# Regenerate with `make lock` after changing the ranges in pyproject.toml.'; \
	  build/lock-venv/bin/pip freeze --exclude-editable | sed 's/+cpu$$//' ) > requirements.lock

## make bench-attention: Table 1 / Figure 5 (right) on this machine, written to results/bench/
bench-attention: venv
	$(PY) -m reformer_lab.bench attention --json results/bench/attention-$(shell hostname -s)-cpu.json

## make bench-peers: the same plus reformer-pytorch and HF transformers, in a separate venv (build/peers)
bench-peers: venv
	@test -x build/peers/bin/python || ($(PYTHON) -m venv build/peers && \
		build/peers/bin/pip install --quiet -r requirements.lock && build/peers/bin/pip install --quiet -e '.[peers]')
	build/peers/bin/python -m reformer_lab.bench attention --peers --variants lsh-2 sdpa --lengths 4096 8192 16384

## make binder-url: print the mybinder.org link for this clone's `origin` remote (needs only Python, no venv)
binder-url:
	@$(PYTHON) reformer_lab/lessons/binder.py $(if $(NB),--notebook $(NB),)

clean:
	rm -rf $(VENV) build .pytest_cache

# The README's two commands are `make lab` and `make test`; the rest are helpers.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# The Python the lock and torch 2.13.0 are tested with; make refuses others before installing anything.
PYTHON_SUPPORTED := 3.11
# TORCH=cpu (default): PyTorch's CPU build from its CPU index (754 MB; the default index's Linux build is the
# CUDA one, ~4.7 GB). TORCH=cuda: the default index's build, for a machine with an NVIDIA GPU.
TORCH ?= cpu
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_VERSION := $(shell sed -n 's/^torch==//p' requirements.lock)
VENV ?= .venv
comma := ,
TORCH_CPU_HOST = $(word 2,$(subst /, ,$(TORCH_CPU_INDEX)))
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8888
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with sanitize.cfg --nbval-cell-timeout=600

.PHONY: venv check-python lab test test-unit test-notebooks test-portable test-browser notebooks site lint lock binder-url \
	bench-attention bench-peers bench-cuda bench-lesson08 bench-lesson08-32k runs-duplication runs-ablation clean

venv: $(STAMP)

## make check-python: stop early, with the fix, when $(PYTHON) is not Python $(PYTHON_SUPPORTED)
check-python:
	@found=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); \
	if [ "$$found" != "$(PYTHON_SUPPORTED)" ]; then \
		echo "reformer-lab needs Python $(PYTHON_SUPPORTED) (the lock and torch $(TORCH_VERSION) are tested there);" \
			"'$(PYTHON)' is $${found:-not a working Python}. Install $(PYTHON_SUPPORTED), then run e.g." \
			"make PYTHON=/path/to/python$(PYTHON_SUPPORTED) lab" >&2; \
		exit 1; \
	fi

$(STAMP): requirements.lock pyproject.toml | check-python
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != ($(subst .,$(comma),$(PYTHON_SUPPORTED))))'; then \
		echo "$(VENV) was built with another Python: rebuilding it"; rm -rf $(VENV); fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if [ "$(TORCH)" = cpu ] && $(PY) -c "import socket; socket.create_connection(('$(TORCH_CPU_HOST)', 443), timeout=3)" 2>/dev/null; then \
		echo "torch $(TORCH_VERSION): CPU build from $(TORCH_CPU_INDEX)"; \
		$(PY) -m pip install --quiet --index-url $(TORCH_CPU_INDEX) "torch==$(TORCH_VERSION)"; \
	else \
		if [ "$(TORCH)" = cpu ]; then echo "torch $(TORCH_VERSION): $(TORCH_CPU_HOST) is out of reach, using the configured index"; \
		else echo "torch $(TORCH_VERSION): the default index's build (TORCH=$(TORCH))"; fi; \
		$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"; \
	fi
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

## make test-portable: nbval again with the kernels another CPU would use (non-vectorised ATen, MKL's
## reproducible mode); a stored output that only holds on this machine fails here
test-portable: venv
	ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE $(PY) -m pytest $(NBVAL) notebooks

test-browser: venv
	$(PY) -m pytest tests/browser

## make notebooks: re-execute every lesson in place, refreshing the stored outputs nbval compares
notebooks: venv
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.timeout=600 \
		$(or $(NB),notebooks/*.ipynb)

## make site: the lessons as static HTML in build/site/ (stored outputs, widgets from their saved state),
## readable offline; needs Node.js/npm once, to fetch the widget manager
site: venv
	$(PY) -m reformer_lab.lessons.site --out build/site

lint: venv
	$(VENV)/bin/ruff check .

## make lock: refresh requirements.lock from the ranges in pyproject.toml
lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install --quiet --upgrade pip
	build/lock-venv/bin/pip install --quiet -e '.[lab,test,dev,site]'
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
	build/peers/bin/python -m reformer_lab.bench attention --peers --variants lsh-2 sdpa --lengths 4096 8192 16384 \
		--json results/bench/attention-peers-cpu.json

## make bench-lesson08: the CPU runs lesson 08 reads: attention layers at 16K tokens per step up to L = 16384, and
## LSH at other chunk sizes, one JSON per length (about 15 minutes on 2 cores; `make -j4` runs four at once on a
## bigger machine, at some cost in timing noise). A file is written whole when its run ends: an interrupted run redoes only the
## missing files. BENCH_PY is the Python to run them with (default: this venv's).
BENCH_PY ?= $(PY)
BENCH_CPU := results/bench/cpu
LESSON08_CPU := $(foreach L,1024 2048 4096 8192 16384,$(BENCH_CPU)/layer-16k-L$(L).json) \
	$(foreach c,32 128 256,$(BENCH_CPU)/chunk$(c)-16k-L8192.json)
## (the 32K-token grid, L up to 32768, the paper's protocol on a CPU: make bench-lesson08-32k, about an hour)
bench-lesson08-32k: $(foreach L,1024 2048 4096 8192 16384 32768,$(BENCH_CPU)/layer-32k-L$(L).json)
bench-lesson08: $(LESSON08_CPU)
$(BENCH_CPU)/layer-16k-L%.json: | $(if $(filter $(PY),$(BENCH_PY)),venv)
	$(BENCH_PY) -m reformer_lab.bench attention --layer --tokens 16384 --lengths $* --full-cap 8192 --json $@
$(BENCH_CPU)/layer-32k-L%.json: | $(if $(filter $(PY),$(BENCH_PY)),venv)
	$(BENCH_PY) -m reformer_lab.bench attention --layer --tokens 32768 --lengths $* --full-cap 4096 --json $@
$(BENCH_CPU)/chunk%-16k-L8192.json: | $(if $(filter $(PY),$(BENCH_PY)),venv)
	$(BENCH_PY) -m reformer_lab.bench attention --layer --tokens 16384 --lengths 8192 --chunk $* \
		--variants lsh-1 lsh-2 lsh-4 lsh-8 --json $@

## make bench-cuda: Figure 5 (right) at the paper's 32K tokens per step on an NVIDIA GPU, written to results/bench/.
## CUDA_PYTHON is a Python whose torch sees the GPU (this venv's CPU build does not): make bench-cuda CUDA_PYTHON=python3
CUDA_PYTHON ?= $(PY)
BENCH_RESULTS ?= results/bench
FIG5_GRID := --tokens 32768 --lengths 1024 2048 4096 8192 16384 32768 --full-cap 32768 --repeats 5
bench-cuda:
	$(CUDA_PYTHON) -m pytest -q -p no:cacheprovider tests/test_attention.py tests/test_memory.py tests/test_reversible.py -k cuda
	$(CUDA_PYTHON) -m reformer_lab.bench attention --device cuda --layer $(FIG5_GRID) \
		--json $(BENCH_RESULTS)/attention-layer-cuda.json
	$(CUDA_PYTHON) -m reformer_lab.bench attention --device cuda $(FIG5_GRID) --json $(BENCH_RESULTS)/attention-cuda.json

## make runs-duplication: the duplication runs of lessons 07 and 10 (paper Table 2, and §4's local attention),
## each setting with three seeds, to results/duplication/<setting>-lesson-seed<N>.json; rerunning the command
## resumes an interrupted run from its checkpoint. Each run's weights alone (the lessons read them) are exported
## to <setting>-lesson-seed<N>.weights.pt. On a GPU machine, with a Python whose torch sees the GPU and
## no venv (giving RUNS_PY drops the venv prerequisite): make runs-duplication DEVICE=cuda RUNS_PY=python3
DEVICE ?= cpu
RUNS_PY ?= $(PY)
RUNS_SETTINGS ?= full lsh-1 lsh-2 lsh-4 local
RUNS_SEEDS ?= 0 1 2
runs-duplication: $(if $(filter $(PY),$(RUNS_PY)),venv)
	@set -e; for setting in $(RUNS_SETTINGS); do for seed in $(RUNS_SEEDS); do \
		echo "== duplication --setting $$setting --seed $$seed"; \
		$(RUNS_PY) -m reformer_lab.experiments duplication --setting $$setting --scale lesson --seed $$seed \
			--device $(DEVICE) --out results/duplication/$$setting-lesson-seed$$seed.json; \
		$(RUNS_PY) -c "import sys; from reformer_lab.measure.duplication_stats import export_weights; \
			export_weights(sys.argv[1], sys.argv[2])" results/duplication/$$setting-lesson-seed$$seed.pt \
			results/duplication/$$setting-lesson-seed$$seed.weights.pt; \
	done; done

## make runs-ablation: the runs lesson 09 reads (paper §5: Figures 3, 4, 5 left) on the repeated-text task, each
## setting with three seeds, to results/ablation/<setting>-lesson-seed<N>.json. Seeds run in the outer loop, so an
## interrupted run leaves whole seeds; rerunning skips finished records and resumes the unfinished one from its
## checkpoint. Each record holds its wall time. The committed ones ran as two queues side by side, one thread each
## (OMP_NUM_THREADS=1 make runs-ablation ABLATION_SETTINGS="..." for two disjoint lists of settings), about an hour
## on 2 CPU cores; never run one setting and seed in two queues at once. Same DEVICE and RUNS_PY as above.
ABLATION_SETTINGS ?= full separate-qk transformer lsh-1 lsh-2 lsh-4 lsh-8 layers-1 layers-4
runs-ablation: $(if $(filter $(PY),$(RUNS_PY)),venv)
	@set -e; for seed in $(RUNS_SEEDS); do for setting in $(ABLATION_SETTINGS); do \
		out=results/ablation/$$setting-lesson-seed$$seed.json; \
		if [ -f $$out ]; then echo "== $$out exists"; continue; fi; \
		echo "== ablation --setting $$setting --seed $$seed"; \
		$(RUNS_PY) -m reformer_lab.experiments ablation --setting $$setting --scale lesson --seed $$seed \
			--device $(DEVICE) --no-progress --out $$out; \
	done; done

## make binder-url: print the mybinder.org link for this clone's `origin` remote (needs only Python, no venv)
binder-url:
	@$(PYTHON) reformer_lab/lessons/binder.py $(if $(NB),--notebook $(NB),)

clean:
	rm -rf $(VENV) build .pytest_cache

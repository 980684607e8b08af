# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DATA ?= data/synthetic
DEMO_MODELS ?= models/demo
DEMO_SEED ?= 0

.PHONY: setup demo bench-demo test test-fast lint format docs wheel-check bench gpu-check bench-sweeps bench-sweeps-256 clean-demo

# The environment: pinned requirements, then this project in editable mode (console scripts, `python -m mrnet`).
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

# Synthetic knees -> nine models -> three ensembles -> AUC table (3 to 4 minutes on 2 free CPU cores).
# Short from-scratch runs: 64 px, 8 epochs, no augmentation (docs/index.md, Quick start).
demo: setup
	$(PY) scripts/make_synthetic.py --out $(DEMO_DATA) --train 200 --valid 100 --size 64 --slices 8 14 --seed 0 --overwrite
	$(PY) scripts/train_all.py --data-dir $(DEMO_DATA) --models-dir $(DEMO_MODELS) --no-pretrained \
		--epochs 8 --lr 1e-4 --weight-decay 1e-4 --no-augment --patience 0 --seed $(DEMO_SEED) --overwrite
	@echo
	@echo "These AUCs are exact only on the CPU and torch build that made them: another CPU rounds differently"
	@echo "and its table can differ. Compare yours with the spread over seeds in docs/reliability.md"
	@echo "(\"What one seed fixes, and where\"); a table inside or near that spread is normal."

# Everything, slow tests included (what CI runs).
test: setup
	$(PY) -m pytest -q

# Seconds-long tests only: skips those that train models or start processes.
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports  # the layers in pyproject.toml: imports only point down
	$(VENV)/bin/mypy  # the type hints of mrnet/ ([tool.mypy] in pyproject.toml)

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The docs site, offline, into build/site (ignored); --strict fails on any warning, a broken link or anchor included.
# The hook that makes the measured tables imports benchmarks/, which is not part of the installed package.
docs: setup
	PYTHONPATH=. $(VENV)/bin/mkdocs build --strict

# Build a wheel, install it in a fresh venv outside the checkout, run commands from another folder.
wheel-check: setup
	bash .ci/wheel-check

# Training and evaluation throughput against the reference loop (docs/speed.md); its results are the record
# docs/measured/benchmark-cpu.json, which the Speed page's table is made from.
bench: setup
	$(PY) scripts/benchmark.py --device cpu --json docs/measured/benchmark-cpu.json

# A GPU machine checked and measured in one go (5-10 minutes on one GPU; docs/speed.md, "GPU"): versions, the CUDA
# tests, a 2-epoch train-plane, a profile of 50 steps, the benchmark for three backbones, NCCL, and with two GPUs or
# more torchrun and a two-worker sweep. Results: bench/gpu-check/gpu-check.json and .txt. Without CUDA it says so.
gpu-check: setup
	$(PY) -m benchmarks.gpu_check --out bench/gpu-check

# The docs' table of backbones, pooling and multi-task (docs/training/measured.md): one train_all sweep per
# configuration on the demo data (hours on 2 CPU cores). Results go to docs/measured/sweeps-64, which the table is
# made from; the models to bench/sweeps. Configurations with a result there are skipped:
# `make bench-sweeps SWEEPS_OPTIONS=--rerun` measures them again and so refreshes the docs.
SWEEPS ?= alexnet/max/single alexnet/max/multi alexnet/mean/multi alexnet/attention/multi alexnet/attention/single \
	mobilenet_v3_small/max/multi resnet18/max/single resnet18/max/multi resnet34/max/multi efficientnet_b0/max/multi \
	r3d_18/max/multi
SWEEPS_OPTIONS ?=
bench-sweeps: setup
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.sweeps --data-dir $(DEMO_DATA) --out docs/measured/sweeps-64 \
		--models-out bench/sweeps $(SWEEPS_OPTIONS) $(SWEEPS) --table

# The same two sweeps at MRNet's resolution: 256 px synthetic knees (200 train / 100 valid, 8-14 slices, seed 0),
# the demo's settings at 8 and 16 epochs (about 2.5 hours at one thread; docs/training/measured.md, "At MRNet's
# resolution"). Results go to docs/measured/sweeps-256-8 and -16, which the docs' tables are made from.
DATA_256 ?= data/synthetic256
bench-sweeps-256: setup
	test -d $(DATA_256) || $(PY) scripts/make_synthetic.py --out $(DATA_256) --train 200 --valid 100 --size 256 --slices 8 14 --seed 0
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.sweeps --data-dir $(DATA_256) --out docs/measured/sweeps-256-8 \
		--models-out bench/sweeps-256-8 $(SWEEPS_OPTIONS) alexnet/max/single alexnet/max/multi --table
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.sweeps --data-dir $(DATA_256) --out docs/measured/sweeps-256-16 \
		--models-out bench/sweeps-256-16 $(SWEEPS_OPTIONS) \
		--settings "--no-pretrained --epochs 16 --lr 1e-4 --weight-decay 1e-4 --no-augment --patience 0 --seed 0" \
		alexnet/max/single alexnet/max/multi --table

clean-demo:
	rm -rf $(DEMO_DATA) $(DEMO_MODELS)

# The demo's records for the docs (its AUC table, and the spread over seeds 0-2): three demo runs, then the records.
bench-demo: setup
	$(MAKE) demo DEMO_MODELS=models/demo DEMO_SEED=0
	$(MAKE) demo DEMO_MODELS=models/demo-seed1 DEMO_SEED=1
	$(MAKE) demo DEMO_MODELS=models/demo-seed2 DEMO_SEED=2
	$(PY) -m benchmarks.demo models/demo models/demo-seed1 models/demo-seed2 \
		--table docs/measured/demo-auc.json --seeds docs/measured/demo-seeds.json --load "$$(cut -d' ' -f1-3 /proc/loadavg)"

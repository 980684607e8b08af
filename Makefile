# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DATA ?= data/synthetic
DEMO_MODELS ?= models/demo

.PHONY: setup demo test bench clean-demo

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

# Synthetic knees -> nine models -> three ensembles -> AUC table (about 6 minutes on 2 CPU cores).
# Short from-scratch runs: 64 px, 8 epochs, no augmentation (see README, Quick start).
demo: setup
	$(PY) scripts/make_synthetic.py --out $(DEMO_DATA) --train 200 --valid 100 --size 64 --slices 8 14 --seed 0 --overwrite
	$(PY) scripts/train_all.py --data-dir $(DEMO_DATA) --output-dir $(DEMO_MODELS) --no-pretrained \
		--epochs 8 --lr 1e-4 --weight-decay 1e-4 --no-augment --patience 0 --seed 0 --overwrite

test: setup
	$(PY) -m pytest -q

clean-demo:
	rm -rf $(DEMO_DATA) $(DEMO_MODELS)

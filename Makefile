# Thin wrappers; the real work lives in pipelines/, training/ and serving/.
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 3000
export DVC_NO_ANALYTICS := 1
export BENTOML_DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run test lint bench train-all

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,serve,dev]'
	touch $@

lint: setup
	$(VENV)/bin/ruff check .

test: setup lint
	$(PY) -m pytest -q

# Every stage in order on the built-in corpus.
train-all: setup
	$(PY) -m pipelines.ingest
	$(PY) -m pipelines.preprocess
	for m in textrnn rcnn bilstm; do $(PY) -m pipelines.train --model $$m && $(PY) -m pipelines.evaluate --model $$m || exit 1; done

run: train-all

bench: setup
	$(PY) -m bench.train_bench

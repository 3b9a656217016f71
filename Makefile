# Thin wrappers; the real work lives in pipelines/, training/ and serving/.
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 3000
MLFLOW_PORT ?= 5000
export DVC_NO_ANALYTICS := 1
export BENTOML_DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run repro serve test lint mlflow-ui bench bench-train bench-candidates bench-ceiling bench-labels bench-serve \
	bench-production bench-scale bench-loop browser

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,serve,spark,dev]'
	touch $@

# The whole pipeline on the built-in corpus, then the REST service on the exported champion.
run: repro serve

repro: setup
	dvc repro

serve: setup
	bentoml serve serving.service:Classifier --host 127.0.0.1 --port $(PORT)

lint: setup
	ruff check .
	hadolint Dockerfile

# Headless Chromium opens the drift report in the tests, as a person would (Debian's package; needs root).
browser:
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium fonts-noto-cjk)

test: setup lint browser
	$(PY) -m pytest -q

mlflow-ui: setup
	mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db} --host 127.0.0.1 --port $(MLFLOW_PORT)

bench: bench-train bench-candidates bench-ceiling bench-labels bench-serve bench-production bench-scale bench-loop

bench-train: repro
	$(PY) -m bench.train_bench

# Every candidate select can choose (train.models + ensemble), seeds 42, 1, 2, beside TF-IDF + LR; then all
# four models, and every subset of them as an ensemble, scored from the saved probabilities.
bench-candidates: repro
	$(PY) -m bench.candidates_bench --name defaults
	$(PY) -m bench.candidates_bench --name all-four --models textrnn rcnn bilstm tfidf --probs bench/results/probs
	$(PY) -m bench.member_subsets --probs bench/results/probs --arms all-four

bench-ceiling: repro
	$(PY) -m bench.ceiling

# Test texts every model calls the other class; verdicts a person wrote in the CSV are kept.
bench-labels: repro
	$(PY) -m bench.label_audit

# The champion bundle against FastAPI + onnxruntime and + PyTorch. Needs wrk: apt-get install -y wrk
bench-serve: repro
	$(PY) bench/serve_bench.py --bundle artifacts/bundle

# The production loop: drift checks' false alarms and detection on the champion; what logging costs (needs wrk).
bench-production: repro
	$(PY) -m bench.drift_bench --windows 40
	$(PY) -m bench.logging_bench --rounds 3
	$(PY) -m bench.rollout_bench --rounds 3

# Time and peak memory against size: the monitor over a day of 50k, 500k and 5M logged predictions.
bench-scale: repro
	$(PY) -m bench.scale_bench monitor
	$(PY) -m bench.scale_bench monitor --postgres

# What a label buys: the review queue against random picks, rounds of serve → label (Label Studio import) →
# snapshot → dvc repro, seeds 42, 1, 2 on the quick model set (rcnn + tfidf); about 75 minutes on 2 cores.
bench-loop: setup
	$(PY) -m bench.loop_bench --seeds 42 1 2 --rounds 4 --labels 500

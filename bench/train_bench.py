"""Training numbers for bench/RESULTS.md: accuracy vs a TF-IDF baseline, epoch time, bucketing speed-up.

Run after `dvc repro preprocess` (the Makefile's `bench-train` does). Each model is trained twice, from
the language model pretrained in this run and from scratch:
    python -m bench.train_bench [--models textrnn rcnn bilstm] [--out bench/results/train.json]
Everything is measured in this one run, on this machine, from data/processed/ and params.yaml.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from pipelines.params import MODEL_NAMES, load_params
from training.datamodule import TextDataModule
from training.evaluation import load_classifier, predict_split, score
from training.fit import fit_classifier
from training.transfer import load_lm_bundle

DATA = Path("data/processed")


def tfidf_baseline() -> dict[str, float]:
    """Character 1–3-gram TF-IDF + logistic regression on the same train split, scored on the same test split."""
    train, test = (pd.read_parquet(DATA / f"{s}.parquet") for s in ("train", "test"))
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    clf = LogisticRegression(C=10.0, max_iter=2000).fit(vectorizer.fit_transform(train["text"]), train["label"])
    pred = clf.predict(vectorizer.transform(test["text"]))
    return {"accuracy": accuracy_score(test["label"], pred),
            "macro_f1": f1_score(test["label"], pred, average="macro"),
            "fit_seconds": time.perf_counter() - start}


def pretrain(workdir: Path) -> tuple[dict, float]:
    """The pretrain stage as the pipeline runs it, into a scratch folder and MLflow store; timed."""
    start = time.perf_counter()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    subprocess.run([sys.executable, "-m", "pipelines.pretrain", "--out", str(workdir / "lm"), "--metrics",
                    str(workdir)], check=True, env=env, capture_output=True)
    seconds = time.perf_counter() - start
    return json.loads((workdir / "lm.json").read_text()), seconds


def train_and_score(name: str, params, workdir: Path, lm_bundle: dict | None) -> dict:
    tp = params.train.trainer
    data = TextDataModule(DATA, DATA / "tokenizer.json", tp.batch_size, tp.bucket_batches, False, tp.seed)
    start = time.perf_counter()
    result = fit_classifier(name, params.train.model(name).model_dump(), tp, data, workdir / name,
                            progress_bar=False, lm_bundle=lm_bundle)
    wall = time.perf_counter() - start
    module = load_classifier(result.best_checkpoint)
    test = score(*predict_split(module, data, "test"), data.labels)
    return {"test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
            "best_val_macro_f1": result.best_val_macro_f1, "epochs": len(result.history),
            "mean_epoch_seconds": sum(result.epoch_seconds) / len(result.epoch_seconds), "fit_seconds": wall}


def tokens_per_second(name: str, params, pad_to_max_len: bool, batches: int = 60) -> float:
    """Real (non-pad) tokens trained per second over `batches` training steps."""
    tp = params.train.trainer.model_copy(update={"max_epochs": 1, "limit_train_batches": batches,
                                                 "limit_val_batches": 1, "init_from_lm": False})
    data = TextDataModule(DATA, DATA / "tokenizer.json", tp.batch_size, tp.bucket_batches, pad_to_max_len, tp.seed)
    real = sum(int((ids != 0).sum()) for _, (ids, _) in zip(range(batches), data.loader("train", True),
                                                              strict=False))
    with tempfile.TemporaryDirectory() as tmp:
        result = fit_classifier(name, params.train.model(name).model_dump(), tp, data, Path(tmp),
                                progress_bar=False)
    return real / result.epoch_seconds[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--speed-model", default="bilstm", choices=MODEL_NAMES)
    parser.add_argument("--parts", nargs="+", default=["accuracy", "speed"], choices=["accuracy", "speed"])
    parser.add_argument("--out", default="bench/results/train.json")
    args = parser.parse_args()
    params = load_params()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Each part updates the file as it finishes, so a later failure loses nothing measured.
    results = json.loads(out.read_text()) if out.exists() else {}
    results["machine"] = f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    if "accuracy" in args.parts:
        results["baseline"] = tfidf_baseline()
        results["models"] = {}
        with tempfile.TemporaryDirectory() as tmp:
            lm_metrics, lm_seconds = pretrain(Path(tmp))
            results["pretrain"] = {"wall_seconds": lm_seconds, "forward_val_ppl": lm_metrics["forward"]["val_ppl"],
                                   "backward_val_ppl": lm_metrics["backward"]["val_ppl"],
                                   "tokens_per_direction": lm_metrics["forward"]["tokens"]}
            lm_bundle = load_lm_bundle(Path(tmp) / "lm" / "lm.pt")
            for name in args.models:
                results["models"][name] = {
                    "pretrained": train_and_score(name, params, Path(tmp) / "lm-init", lm_bundle),
                    "scratch": train_and_score(name, params, Path(tmp) / "scratch", None),
                }
                out.write_text(json.dumps(results, indent=2) + "\n")
                print(name, results["models"][name], flush=True)
    if "speed" in args.parts:
        bucketed = tokens_per_second(args.speed_model, params, pad_to_max_len=False)
        padded = tokens_per_second(args.speed_model, params, pad_to_max_len=True)
        results["tokens_per_second"] = {"model": args.speed_model, "bucketed": bucketed,
                                        "padded_to_max_len": padded, "speedup": bucketed / padded}
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

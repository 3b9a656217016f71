"""Training numbers for bench/RESULTS.md: accuracy vs a TF-IDF baseline, epoch time, bucketing speed-up.

Run after `dvc repro preprocess` (the Makefile's `bench-train` does). Each model is trained from the
language model pretrained in this run and from scratch, once per seed (one seed's test accuracy moves by
about a point, more than the effect being measured):
    python -m bench.train_bench [--models textrnn rcnn bilstm] [--seeds 42 1 2] [--out bench/results/train.json]
Everything is measured in this one run, on this machine, from data/processed/ and params.yaml.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import Pipeline, make_pipeline

from pipelines.params import MODEL_NAMES, load_params
from training.checkpoints import load_model
from training.datamodule import TextDataModule
from training.evaluation import predict_proba, score
from training.fit import fit_classifier
from training.transfer import load_lm_bundle

DATA = Path("data/processed")
LENGTH_BINS = ((0, 40), (40, 128), (128, 10**9))  # characters; max_len cuts the RNNs' input at 128 tokens


def accuracy_by_length(texts: list[str], correct: list[bool]) -> dict[str, float]:
    """Test accuracy per text-length bin: where the recurrent models lose to the n-gram baseline."""
    out = {}
    for lo, hi in LENGTH_BINS:
        hits = [c for t, c in zip(texts, correct, strict=True) if lo <= len(t) < hi]
        out[f"{lo}-{hi if hi < 10**9 else ''}"] = sum(hits) / max(1, len(hits))
    return out


def fit_baseline(train: pd.DataFrame) -> Pipeline:
    """The baseline every RNN is compared with: character 1–3-gram TF-IDF + logistic regression."""
    return make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2),
                         LogisticRegression(C=10.0, max_iter=2000)).fit(train["text"], train["label"])


def tfidf_baseline(data_dir: Path = DATA) -> dict[str, float]:
    """The baseline fitted on the train split and scored on the test split, as the RNNs are."""
    train, test = (pd.read_parquet(data_dir / f"{s}.parquet") for s in ("train", "test"))
    start = time.perf_counter()
    pred = fit_baseline(train).predict(test["text"])
    return {"accuracy": accuracy_score(test["label"], pred),
            "macro_f1": f1_score(test["label"], pred, average="macro"),
            "fit_seconds": time.perf_counter() - start,
            "accuracy_by_length": accuracy_by_length(test["text"].tolist(), list(pred == test["label"]))}


def pretrain(workdir: Path) -> tuple[dict, float]:
    """The pretrain stage with params.yaml's pretrain section, switched on, into a scratch folder; timed."""
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["pretrain"]["enabled"] = True  # the bench needs a language model even where params.yaml turns it off
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    start = time.perf_counter()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    done = subprocess.run([sys.executable, "-m", "pipelines.pretrain", "--params", str(workdir / "params.yaml"),
                           "--out", str(workdir / "lm"), "--metrics", str(workdir)], env=env, capture_output=True,
                          text=True)
    if done.returncode:
        sys.exit(f"the pretrain stage failed:\n{done.stderr[-3000:]}")
    seconds = time.perf_counter() - start
    return json.loads((workdir / "lm.json").read_text()), seconds


def scarce_labels(fraction: float, seed: int, workdir: Path) -> Path:
    """A data folder whose train split keeps `fraction` of each class; val, test and tokenizer unchanged."""
    workdir.mkdir(parents=True, exist_ok=True)
    train = pd.read_parquet(DATA / "train.parquet")
    train.groupby("label", group_keys=False).sample(frac=fraction, random_state=seed).to_parquet(
        workdir / "train.parquet")
    for name in ("val.parquet", "test.parquet", "tokenizer.json"):  # same bytes: the LM's tokenizer sha matches
        shutil.copyfile(DATA / name, workdir / name)
    return workdir


def train_and_score(name: str, params, workdir: Path, lm_bundle: dict | None, seed: int,
                    data_dir: Path = DATA) -> dict:
    tp = params.train.trainer.model_copy(update={"seed": seed})
    data = TextDataModule(data_dir, data_dir / "tokenizer.json", tp.batch_size, tp.bucket_batches, False, tp.seed)
    start = time.perf_counter()
    result = fit_classifier(name, params.train.model(name).model_dump(), tp, data, workdir / name,
                            progress_bar=False, lm_bundle=lm_bundle)
    wall = time.perf_counter() - start
    model, _ = load_model(result.best_checkpoint)
    preds, targets = predict_proba(model, data, "test").argmax(-1), torch.tensor(data.datasets["test"].labels)
    test = score(preds, targets, data.labels)
    texts = list(data.texts("test"))
    return {"seed": seed, "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
            "best_val_macro_f1": result.best_val_macro_f1, "epochs": len(result.history),
            "mean_epoch_seconds": sum(result.epoch_seconds) / len(result.epoch_seconds), "fit_seconds": wall,
            "accuracy_by_length": accuracy_by_length(texts, (preds == targets).tolist())}


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Mean and sample std over seeds per arm, and the paired (same seed) LM-minus-scratch differences."""
    out: dict = {}
    for arm, rows in runs.items():
        for key in ("test_accuracy", "test_macro_f1"):
            values = [r[key] for r in rows]
            out[f"{arm}_{key}_mean"] = statistics.fmean(values)
            out[f"{arm}_{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    diffs = [a["test_accuracy"] - b["test_accuracy"] for a, b in zip(runs["pretrained"], runs["scratch"], strict=True)]
    out["paired_accuracy_gain"] = diffs
    out["mean_epoch_seconds"] = statistics.fmean(r["mean_epoch_seconds"] for rows in runs.values() for r in rows)
    return out


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


def compare(models: list[str], seeds: list[int], params, workdir: Path, lm_bundle: dict, data_dir: Path,
            compared: dict, results: dict, out: Path) -> None:
    """Each model from the language model and from scratch, once per seed, into `compared` (a part of
    `results`, saved to `out` as each model finishes)."""
    for name in models:
        runs: dict[str, list[dict]] = {"pretrained": [], "scratch": []}
        for seed in seeds:
            runs["pretrained"].append(train_and_score(name, params, workdir / "lm-init", lm_bundle, seed, data_dir))
            runs["scratch"].append(train_and_score(name, params, workdir / "scratch", None, seed, data_dir))
            print(data_dir.name, name, seed, runs["pretrained"][-1], runs["scratch"][-1], flush=True)
        compared[name] = {**runs, "summary": summarise(runs)}
        out.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--speed-model", default="bilstm", choices=MODEL_NAMES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    parser.add_argument("--label-fraction", type=float, default=0.1, help="train labels kept by the scarce part")
    parser.add_argument("--parts", nargs="+", default=["accuracy", "scarce", "speed"],
                        choices=["accuracy", "scarce", "speed"])
    parser.add_argument("--lm-transfer", choices=["all", "embedding"],
                        help="what the LM initialises in the LM arm (default: params.yaml's train.trainer.lm_transfer)")
    parser.add_argument("--out", default="bench/results/train.json")
    args = parser.parse_args()
    params = load_params()
    if args.lm_transfer:
        trainer = params.train.trainer.model_copy(update={"lm_transfer": args.lm_transfer})
        params = params.model_copy(update={"train": params.train.model_copy(update={"trainer": trainer})})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Each part updates the file as it finishes, so a later failure loses nothing measured.
    results = json.loads(out.read_text()) if out.exists() else {}
    results["machine"] = f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    with tempfile.TemporaryDirectory() as tmp:
        if {"accuracy", "scarce"} & set(args.parts):
            lm_metrics, lm_seconds = pretrain(Path(tmp))
            results["pretrain"] = {"wall_seconds": lm_seconds, "forward_val_ppl": lm_metrics["forward"]["val_ppl"],
                                   "backward_val_ppl": lm_metrics.get("backward", {}).get("val_ppl"),
                                   "tokens_per_direction": lm_metrics["forward"]["tokens"]}
            lm_bundle = load_lm_bundle(Path(tmp) / "lm" / "lm.pt")
        if "accuracy" in args.parts:
            results["baseline"], results["models"] = tfidf_baseline(DATA), {}
            results["lm_transfer"] = params.train.trainer.lm_transfer
            compare(args.models, args.seeds, params, Path(tmp), lm_bundle, DATA, results["models"], results, out)
        if "scarce" in args.parts:
            # The language model still reads every train text; only the labels are scarce.
            data_dir = scarce_labels(args.label_fraction, params.preprocess.seed, Path(tmp) / "scarce")
            results["scarce"] = {"label_fraction": args.label_fraction, "lm_transfer": params.train.trainer.lm_transfer,
                                 "train_texts": len(pd.read_parquet(data_dir / "train.parquet")),
                                 "baseline": tfidf_baseline(data_dir), "models": {}}
            compare(args.models, args.seeds, params, Path(tmp), lm_bundle, data_dir, results["scarce"]["models"],
                    results, out)
    if "speed" in args.parts:
        bucketed = tokens_per_second(args.speed_model, params, pad_to_max_len=False)
        padded = tokens_per_second(args.speed_model, params, pad_to_max_len=True)
        results["tokens_per_second"] = {"model": args.speed_model, "bucketed": bucketed,
                                        "padded_to_max_len": padded, "speedup": bucketed / padded}
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

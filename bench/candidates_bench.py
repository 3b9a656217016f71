"""Every candidate select can choose, by the accuracy protocol: seeds 42, 1, 2; test reported, never used to choose.

Run after `dvc repro pretrain` (uses data/processed, models/lm and params.yaml). For each seed, the models
(params.yaml's train.models unless `--models` says otherwise) are trained with params.yaml's settings (plus
any `--set section.key=value` overrides), then the ensemble of them is scored; each candidate also runs the
behavioural checklist. The TF-IDF + logistic regression baseline is fitted on the same train split.
    python -m bench.candidates_bench --name sentence-views-1 --set train.trainer.sentence_views=1
    python -m bench.candidates_bench --name no-ngram --set train.rcnn.ngram_buckets=0 --models rcnn
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC
from tokenizers import Tokenizer

from bench.train_bench import tfidf_baseline
from pipelines.params import MODEL_NAMES, parse_params
from training.assessment import check_model, find_checklist, torch_predictor
from training.checkpoints import load_model
from training.checks import load_checklist
from training.datamodule import TextDataModule
from training.ensemble import AveragedProbabilities
from training.evaluation import predict_proba, score
from training.fit import fit_model
from training.tracking import dataset_name
from training.transfer import load_lm_bundle


def with_overrides(overrides: list[str]):
    """params.yaml with `a.b.c=value` settings applied, validated like the pipeline's."""
    raw = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
    for item in overrides:
        key, value = item.split("=", 1)
        *path, last = key.split(".")
        node = raw
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return parse_params(raw)


def word_svm_baseline(data: Path) -> dict[str, float]:
    """For English: word 1–2-gram TF-IDF + LinearSVC on the same train split, scored on test."""


    train, test = (pd.read_parquet(data / f"{s}.parquet") for s in ("train", "test"))
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LinearSVC(C=1.0))
    pred = model.fit(train["text"], train["label"]).predict(test["text"])
    return {"accuracy": accuracy_score(test["label"], pred), "macro_f1": f1_score(test["label"], pred, average="macro")}


def scores_of(probs, data: TextDataModule) -> dict:
    out = {}
    for split in ("val", "test"):
        target = torch.tensor(data.datasets[split].labels, dtype=torch.long)
        s = score(probs[split].argmax(-1), target, data.labels)
        out[split] = {"accuracy": s["accuracy"], "macro_f1": s["macro_f1"]}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", required=True, help="what this arm is called in the results file")
    p.add_argument("--set", nargs="*", default=[], dest="overrides", help="section.key=value overrides")
    p.add_argument("--models", nargs="+", choices=MODEL_NAMES, help="default: params.yaml's train.models")
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    p.add_argument("--out", default="bench/results/candidates.json")
    p.add_argument("--data", default="data/processed", type=Path)
    p.add_argument("--lm", default="models/lm/lm.pt")
    p.add_argument("--baseline", default="char-lr", choices=["char-lr", "word-svm"],
                   help="char-lr: character 1–3-gram TF-IDF + LR; word-svm: word 1–2-gram TF-IDF + LinearSVC")
    p.add_argument("--probs", type=Path, help="also save each candidate's val/test probabilities here "
                   "(<name>-<seed>.npz), to score other ensembles of the same members without retraining")
    args = p.parse_args()
    data_dir = args.data
    params = with_overrides(args.overrides)
    args.models = args.models or list(params.train.models)
    lm = load_lm_bundle(args.lm) if params.pretrain.enabled and params.train.trainer.init_from_lm else None
    tokenizer = Tokenizer.from_file(str(data_dir / "tokenizer.json"))
    path = find_checklist(params.check.checklist, params.data.source)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    baseline = tfidf_baseline(data_dir) if args.baseline == "char-lr" else word_svm_baseline(data_dir)
    results["baseline"] = {"kind": args.baseline, **{k: baseline[k] for k in ("accuracy", "macro_f1")}}
    arm = results.setdefault("arms", {})[args.name] = {"overrides": args.overrides, "runs": []}
    for seed in args.seeds:
        tp = params.train.trainer.model_copy(update={"seed": seed})
        data = TextDataModule(data_dir, data_dir / "tokenizer.json", tp.batch_size, tp.bucket_batches, False, seed,
                              tp.sentence_views)
        checklist = load_checklist(path, dataset_name(params.data.source), data.labels) if path else None
        models, row = {}, {"seed": seed}
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.models:
                fit = fit_model(name, params.train.model(name).model_dump(), tp, data, Path(tmp) / name,
                                     progress_bar=False, lm_bundle=lm)
                models[name] = load_model(fit.best_checkpoint)[0]
        if len(models) > 1:
            models["ensemble"] = AveragedProbabilities(list(models.values())).eval()
        saved = {}
        for name, model in models.items():
            probs = {s: predict_proba(model, data, s) for s in ("val", "test")}
            saved.update({f"{name}/{s}": p.numpy() for s, p in probs.items()})
            checks = check_model(checklist, torch_predictor(model, tokenizer), data.labels,
                                 params.check.floors.model_dump())
            row[name] = {**scores_of(probs, data), "checks": checks["pass_rate"], "checks_passed": checks["passed"],
                         "failed_cases": [case["id"] for case in checks["failed"]]}
        if args.probs:
            args.probs.mkdir(parents=True, exist_ok=True)
            labels = {f"labels/{s}": np.asarray(data.datasets[s].labels) for s in ("val", "test")}
            np.savez_compressed(args.probs / f"{args.name}-{seed}.npz", **saved, **labels)
        chosen = max(models, key=lambda m: (row[m]["checks_passed"], row[m]["val"]["macro_f1"]))
        row["selected"] = chosen
        arm["runs"].append(row)
        print(json.dumps(row), flush=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
    arm["summary"] = {
        name: {f"{split}_{key}": [round(100 * statistics.fmean(r[name][split][key] for r in arm["runs"]), 2),
                                   round(100 * statistics.stdev(r[name][split][key] for r in arm["runs"]), 2)
                                   if len(arm["runs"]) > 1 else 0.0]
               for split in ("val", "test") for key in ("accuracy", "macro_f1")}
        for name in models
    }
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({"baseline": results["baseline"], args.name: arm["summary"]}, indent=2))


if __name__ == "__main__":
    main()

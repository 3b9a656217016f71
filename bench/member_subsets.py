"""Every ensemble of a subset of the members, scored from saved probabilities (no retraining).

Reads the `<arm>-<seed>.npz` files `bench.candidates_bench --probs DIR` writes, averages the chosen
members' probabilities as the ensemble stage does, and reports val and test macro-F1 and accuracy per
subset, mean ± stdev over the seeds. Rows are sorted by val macro-F1: the protocol chooses on val only.
    python -m bench.member_subsets --probs bench/results/probs --arms all-four
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

MEMBERS = ("textrnn", "rcnn", "bilstm", "tfidf")


def scores(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    pred = probs.argmax(-1)
    return {"accuracy": accuracy_score(labels, pred), "macro_f1": f1_score(labels, pred, average="macro")}


def subset_scores(saved: dict[str, np.ndarray], subset: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """The mean of the members' probabilities, as training/ensemble.py's AveragedProbabilities computes it."""
    return {split: scores(np.mean([saved[f"{m}/{split}"] for m in subset], axis=0), saved[f"labels/{split}"])
            for split in ("val", "test")}


def summarise(arm: str, files: list[Path]) -> list[dict]:
    runs = [dict(np.load(f)) for f in files]
    rows = []
    for size in range(1, len(MEMBERS) + 1):
        for subset in itertools.combinations(MEMBERS, size):
            per_seed = [subset_scores(run, subset) for run in runs]
            row = {"arm": arm, "members": "+".join(subset), "seeds": len(runs)}
            for split in ("val", "test"):
                for key in ("macro_f1", "accuracy"):
                    values = [100 * s[split][key] for s in per_seed]
                    row[f"{split}_{key}"] = [round(statistics.fmean(values), 2),
                                             round(statistics.stdev(values), 2) if len(values) > 1 else 0.0]
            rows.append(row)
    return sorted(rows, key=lambda r: -r["val_macro_f1"][0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--probs", type=Path, required=True, help="the folder candidates_bench --probs wrote")
    p.add_argument("--arms", nargs="+", required=True)
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    p.add_argument("--out", type=Path, default=Path("bench/results/member_subsets.json"))
    args = p.parse_args()
    results = {}
    for arm in args.arms:
        files = [args.probs / f"{arm}-{seed}.npz" for seed in args.seeds]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise SystemExit(f"{', '.join(missing)} not found: run bench.candidates_bench --name {arm} "
                             f"--probs {args.probs} first")
        results[arm] = summarise(arm, files)
        print(f"\n{arm} (val / test macro-F1, test accuracy; mean ± stdev of {len(files)} seeds)")
        for r in results[arm]:
            print(f"  {r['members']:<28} {r['val_macro_f1'][0]:6.2f} ± {r['val_macro_f1'][1]:.2f}   "
                  f"{r['test_macro_f1'][0]:6.2f} ± {r['test_macro_f1'][1]:.2f}   {r['test_accuracy'][0]:6.2f}")
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

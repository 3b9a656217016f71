"""Which test texts does every model get "wrong", and is the label or the models at fault?

Run after `dvc repro` (it reads data/processed/ and the pipeline's models/<name>/best.ckpt):
    python -m bench.label_audit [--out bench/results/label_audit.csv]
Lists the test texts on which the TF-IDF baseline and every trained RNN agree with each other and not with
the label, and counts how many test texts at least one of them gets right. The CSV has a `verdict` column
for a person to fill in after reading each text: `label_wrong` (the text plainly says the other thing),
`undecidable` (no opinion, or both), or `models_wrong`. A rerun keeps every verdict already written, keyed on
(text, label): rows that are no longer unanimous errors (another training run) stay in the file with
`in_current_audit` false, so no judgement is lost, and only current rows are counted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.ceiling import probabilities_on_test, splits
from pipelines.params import MODEL_NAMES

VERDICTS = ("label_wrong", "undecidable", "models_wrong")
KEY = ["text", "label"]


def predictions(models: list[str]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The test split and each model's predicted label per row, the baseline's under 'tfidf'."""
    data = splits()
    labels, probs = probabilities_on_test(data, models)
    return data["test"], {name: labels[p.argmax(1)] for name, p in probs.items()}


def read_verdicts(path: Path) -> pd.DataFrame:
    """Verdicts already written in `path`, checked: one per (text, label), each one of VERDICTS."""
    previous = pd.read_csv(path, keep_default_na=False, dtype=str)
    judged = previous[previous["verdict"] != ""]
    bad = judged[~judged["verdict"].isin(VERDICTS)]
    if len(bad):
        raise ValueError(f"{path}: verdict {bad['verdict'].iloc[0]!r} for text {bad['text'].iloc[0][:40]!r} is "
                         f"not one of {', '.join(VERDICTS)}: correct it (or leave it empty)")
    if judged.duplicated(KEY).any():
        raise ValueError(f"{path}: a (text, label) pair has two verdicts: keep one row of each")
    return judged


def audit(test: pd.DataFrame, preds: dict[str, np.ndarray], judged: pd.DataFrame | None) -> pd.DataFrame:
    """Unanimous errors of this run, with earlier verdicts; earlier judged rows not among them kept after."""
    stacked = np.stack(list(preds.values()))
    unanimous = (stacked == stacked[0]).all(0) & (stacked[0] != test["label"].to_numpy())
    rows = test.loc[unanimous, KEY].astype(str).assign(predicted=stacked[0][unanimous], in_current_audit=True)
    if judged is None:
        return rows.assign(verdict="").reset_index(drop=True)
    rows = rows.merge(judged[[*KEY, "verdict"]], on=KEY, how="left").fillna({"verdict": ""})
    dropped = judged.merge(rows[KEY], on=KEY, how="left", indicator=True).query("_merge == 'left_only'")
    if len(dropped):
        print(f"{len(dropped)} judged texts are no longer unanimous errors; kept with in_current_audit false")
    dropped = dropped.drop(columns="_merge").assign(in_current_audit=False)
    return pd.concat([rows, dropped[rows.columns]], ignore_index=True)


def summary(test: pd.DataFrame, preds: dict[str, np.ndarray], rows: pd.DataFrame) -> dict:
    """Accuracies, the share some model gets right, and the verdict counts over this run's unanimous errors."""
    gold = test["label"].to_numpy()
    right = np.stack([p == gold for p in preds.values()])
    current = rows[rows["in_current_audit"].astype(str) == "True"]
    judged = current[current["verdict"].isin(VERDICTS)]
    out = {"test_texts": len(test), "accuracy": {k: float(v.mean()) for k, v in zip(preds, right, strict=True)},
           "right_by_at_least_one_model": float(right.any(0).mean()), "all_agree_against_label": len(current),
           "judged": len(judged), "verdicts": judged["verdict"].value_counts().to_dict()}
    if len(judged):
        share = {v: out["verdicts"].get(v, 0) / len(judged) for v in VERDICTS}
        # As a share of the whole test split; exact when every current row is judged, an extrapolation
        # from the judged ones (not a random sample: file order) otherwise.
        out["share_of_test"] = {v: share[v] * len(current) / len(test) for v in VERDICTS}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--out", default="bench/results/label_audit.csv")
    args = parser.parse_args()
    out = Path(args.out)
    judged = read_verdicts(out) if out.exists() else None
    test, preds = predictions(args.models)
    rows = audit(test, preds, judged)
    rows.to_csv(out, index=False)
    result = summary(test, preds, rows)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""How far above TF-IDF can the built-in corpus go? Linear baselines tuned, and the RNNs combined with one.

Run after `dvc repro` (it reads data/processed/ and the pipeline's models/<name>/best.ckpt):
    python -m bench.ceiling [--out bench/results/ceiling.json]
Prints validation and test accuracy of character n-gram TF-IDF + logistic regression and NB-weighted
logistic regression over a small grid, then each trained RNN alone and averaged (probabilities) with the
default baseline. If that average does not beat the baseline alone, the RNNs miss mostly texts the n-gram
model also misses or gets right for other reasons, and no tuning of the RNN alone is likely to add 2 points.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from bench.train_bench import fit_baseline
from pipelines.params import MODEL_NAMES
from training.checkpoints import load_model
from training.datamodule import TextDataModule
from training.evaluation import check_labels, predict_proba

DATA = Path("data/processed")


def splits() -> dict[str, pd.DataFrame]:
    return {s: pd.read_parquet(DATA / f"{s}.parquet") for s in ("train", "val", "test")}


def accuracy(pred, frame: pd.DataFrame) -> float:
    return float(np.mean(np.asarray(pred) == frame["label"].to_numpy()))


def linear_grid(data: dict[str, pd.DataFrame]) -> list[dict]:
    """TF-IDF + LR and NB-LR (Wang & Manning 2012) over character n-gram ranges and C."""
    rows = []
    train = data["train"]
    for ngrams in ((1, 2), (1, 3), (1, 4)):
        tfidf = TfidfVectorizer(analyzer="char", ngram_range=ngrams, sublinear_tf=True, min_df=2)
        x = {s: (tfidf.fit_transform if s == "train" else tfidf.transform)(f["text"]) for s, f in data.items()}
        for c in (1.0, 3.0, 10.0, 30.0):
            clf = LogisticRegression(C=c, max_iter=3000).fit(x["train"], train["label"])
            rows.append({"model": "tfidf+lr", "ngrams": list(ngrams), "C": c,
                         **{s: accuracy(clf.predict(x[s]), data[s]) for s in ("val", "test")}})
        binary = CountVectorizer(analyzer="char", ngram_range=ngrams, min_df=2, binary=True)
        b = {s: (binary.fit_transform if s == "train" else binary.transform)(f["text"]) for s, f in data.items()}
        labels = sorted(train["label"].unique())
        if len(labels) == 2:  # NB log-count ratios are defined for two classes
            y = (train["label"] == labels[1]).to_numpy()
            p = np.asarray(b["train"][y].sum(0)).ravel() + 1
            q = np.asarray(b["train"][~y].sum(0)).ravel() + 1
            r = sparse.diags(np.log((p / p.sum()) / (q / q.sum())))
            for c in (0.1, 1.0):
                clf = LogisticRegression(C=c, max_iter=3000).fit(b["train"] @ r, train["label"])
                rows.append({"model": "nb+lr", "ngrams": list(ngrams), "C": c,
                             **{s: accuracy(clf.predict(b[s] @ r), data[s]) for s in ("val", "test")}})
    return rows


def probabilities_on_test(data: dict[str, pd.DataFrame], models: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Label names and test-split probabilities in row order: the baseline's under 'tfidf', then each of the
    pipeline's trained RNNs (models/<name>/best.ckpt)."""
    baseline = fit_baseline(data["train"])
    labels = baseline.classes_
    dm = TextDataModule(DATA, DATA / "tokenizer.json")
    assert list(labels) == dm.labels, "both sort their labels"
    probs = {"tfidf": baseline.predict_proba(data["test"]["text"])}
    for name in models:
        module, labels = load_model(Path("models") / name / "best.ckpt")
        check_labels(labels, dm)
        probs[name] = predict_proba(module, dm, "test").numpy()
    return labels, probs


def with_baseline(data: dict[str, pd.DataFrame], models: list[str]) -> dict:
    labels, probs = probabilities_on_test(data, models)
    base = probs.pop("tfidf")
    out = {"baseline": accuracy(labels[base.argmax(1)], data["test"])}
    for name, p in probs.items():
        out[name] = {"alone": accuracy(labels[p.argmax(1)], data["test"]),
                     "averaged_with_baseline": accuracy(labels[(p + base).argmax(1)], data["test"])}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--out", default="bench/results/ceiling.json")
    args = parser.parse_args()
    data = splits()
    results = {"linear": linear_grid(data), "rnn_with_baseline": with_baseline(data, args.models)}
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

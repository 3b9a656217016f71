"""One monitoring report: a window of logged predictions against the reference the model was trained on.

The reference is the train split (texts, labels, lengths) plus what the served bundle does with the test split:
its confidence and its tokenizer's [UNK] share. The tokenizer and the model were fitted on train texts, so only
held-out texts show the confidence and the unknown words a healthy window should have.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring import drift
from monitoring.window import Window
from serving.contract import UNK_ID
from serving.prediction_log import token_stats
from serving.store import Prediction
from training.cleaning import normalise


@dataclass(frozen=True)
class Reference:
    texts: list[str]
    labels: list[str]
    n_chars: np.ndarray
    n_tokens: np.ndarray  # per test-split text
    n_unk: np.ndarray
    confidence: np.ndarray  # the model's top-label probability on the test split
    model_labels: tuple[str, ...]


def token_counts(predictor: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    stats = [token_stats(text, ids, UNK_ID) for text, ids in zip(texts, predictor.encode(texts), strict=True)]
    return np.array([s[0] for s in stats]), np.array([s[1] for s in stats])


def load_reference(data_dir: Path, predictor: Any) -> Reference:
    """The train split, and the served model's confidence and [UNK] share on the test split."""
    paths = {name: data_dir / f"{name}.parquet" for name in ("train", "test")}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not found: the monitor compares traffic with the train "
                                "split; run `dvc repro` (or `dvc pull`) first, or pass --data")
    train, test = pd.read_parquet(paths["train"]), pd.read_parquet(paths["test"])
    texts, held_out = train["text"].astype(str).tolist(), test["text"].astype(str).tolist()
    n_tokens, n_unk = token_counts(predictor, held_out)
    confidence = predictor.probabilities(held_out).max(axis=1)
    return Reference(texts, train["label"].astype(str).tolist(), np.array([len(t) for t in texts]), n_tokens, n_unk,
                     confidence, tuple(predictor.labels))


def run_checks(reference: Reference, rows: list[Prediction],
               thresholds: drift.Thresholds = drift.DEFAULT_THRESHOLDS) -> list[drift.Check]:
    # The train split was normalised (NFKC, one space) in preprocess; traffic arrives raw. Normalise it the
    # same way, or full-width punctuation alone would tell the two apart.
    texts = [normalise(p.text) for p in rows if p.text]
    if len(texts) >= drift.MIN_ROWS:
        text = drift.text_drift(reference.texts, texts, thresholds=thresholds)
    else:
        text = drift.Check("text", None, None, False, "domain classifier ROC AUC",
                           {"skipped": f"{len(texts)} texts logged in the window (texts logged as hashes with "
                                       f"TEXTCLF_LOG_TEXTS=false are not compared); needs at least {drift.MIN_ROWS}"})
    return [text, drift.label_drift(reference.labels, [p.label for p in rows], reference.model_labels, thresholds),
            drift.numeric_drift("confidence", reference.confidence, [p.score for p in rows],
                                "top-label probability vs the model on the test split", thresholds),
            drift.numeric_drift("length", reference.n_chars, [p.n_chars for p in rows], "characters per text",
                                thresholds),
            drift.unk_drift(reference.n_tokens, reference.n_unk, [p.n_tokens for p in rows],
                            [p.n_unk for p in rows], thresholds)]


def summarise(span: Window, rows: list[Prediction], checks: list[drift.Check],
              queue: list[dict[str, Any]]) -> dict[str, Any]:
    """What metrics/monitor.json holds; `queue` is feedback_data.review_queue's for the same window."""
    versions = sorted({f"{p.model_name} {p.model_version}" for p in rows})
    return {
        "window": span.as_dict(),
        "rows": len(rows),
        "models": versions,
        "drift_detected": any(c.drifted for c in checks),
        "drifted": [c.name for c in checks if c.drifted],
        "checks": {c.name: asdict(c) for c in checks},
        "review_queue": queue,
    }


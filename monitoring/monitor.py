"""One monitoring report: a window of logged predictions against the reference the model was trained on
(monitoring/reference.py), both read in memory that does not grow with the window or the corpus.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from monitoring import drift
from monitoring.reference import Reference
from monitoring.window import Window
from serving.store import SCORE_BUCKETS, Prediction, Store
from training.cleaning import normalise


@dataclass(frozen=True)
class Traffic:
    """What the checks read of a window: counts and distributions aggregated by the database, and a seeded
    sample of its texts, so neither time nor memory of a report grows with more than the rows scanned."""

    rows: int
    models: list[str]  # "name version", each model that answered in the window
    labels: dict[str, int]  # predicted label → rows
    scores: tuple[np.ndarray, np.ndarray]  # (top-label probability, rows with it)
    lengths: tuple[np.ndarray, np.ndarray]  # (characters per text, rows with it)
    tokens: int
    unk: int
    # The sample the text check reads, normalised as preprocess normalised the train split (NFKC, one space):
    # traffic arrives raw, and full-width punctuation alone would tell the two apart.
    texts: list[str]
    texts_logged: int  # rows with their text (TEXTCLF_LOG_TEXTS=false logs a hash)

    @classmethod
    def of_store(cls, store: Store, span: Window, sample: int = drift.TEXT_CURRENT_ROWS, seed: int = 0) -> Traffic:
        counts = store.window_counts(span.since, span.until)
        labels: dict[str, int] = {}
        for _, _, label, n in counts.labels:
            labels[label] = labels.get(label, 0) + n
        # A bucket stands for its middle: the figures move by at most half a step (SCORE_BUCKETS).
        scores = np.minimum((np.array(list(counts.scores), dtype=float) + 0.5) / SCORE_BUCKETS, 1.0)
        return cls(counts.rows, sorted({f"{m} {v}" for m, v, _, _ in counts.labels}), labels,
                   (scores, np.array(list(counts.scores.values()), dtype=float)),
                   (np.array(list(counts.lengths), dtype=float), np.array(list(counts.lengths.values()), dtype=float)),
                   counts.tokens, counts.unk, [normalise(t) for t in store.sample_texts(span.since, span.until, sample,
                                                                                       seed)], counts.texts)

    @classmethod
    def of_rows(cls, rows: list[Prediction], sample: int = drift.TEXT_CURRENT_ROWS, seed: int = 0) -> Traffic:
        """The same from rows in memory, exactly (benchmarks, and tests of the aggregates against it)."""
        texts = [p.text for p in rows if p.text]
        if len(texts) > sample:
            texts = [texts[i] for i in np.random.default_rng(seed).choice(len(texts), sample, replace=False)]
        ones = np.ones(len(rows))
        return cls(len(rows), sorted({f"{p.model_name} {p.model_version}" for p in rows}),
                   dict(Counter(p.label for p in rows)), (np.array([p.score for p in rows]), ones),
                   (np.array([p.n_chars for p in rows], dtype=float), ones), sum(p.n_tokens for p in rows),
                   sum(p.n_unk for p in rows), [normalise(t) for t in texts], sum(1 for p in rows if p.text))


def run_checks(reference: Reference, traffic: Traffic,
               thresholds: drift.Thresholds = drift.DEFAULT_THRESHOLDS) -> list[drift.Check]:
    if len(traffic.texts) >= drift.MIN_ROWS:
        text = drift.text_drift(reference.texts, traffic.texts, thresholds=thresholds)
        text.detail.update(texts_logged=traffic.texts_logged, reference_sampled_from=reference.train_rows)
    else:
        text = drift.Check("text", None, None, False, "domain classifier ROC AUC",
                           {"skipped": f"{traffic.texts_logged} texts logged in the window (texts logged as hashes "
                                       f"with TEXTCLF_LOG_TEXTS=false are not compared); needs at least "
                                       f"{drift.MIN_ROWS}", "rows": traffic.texts_logged})
    checks = [text, drift.label_drift(reference.labels, traffic.labels, reference.model_labels, thresholds),
              drift.numeric_drift("confidence", reference.confidence, *traffic.scores,
                                  "top-label probability vs the model on the test split", thresholds),
              drift.numeric_drift("length", reference.n_chars, *traffic.lengths, "characters per text", thresholds),
              drift.unk_drift(reference.n_tokens, reference.n_unk, traffic.tokens, traffic.unk, thresholds)]
    # Each figure says how many rows it rests on, the reference's sample and the split it was drawn from.
    for check in checks:
        if check.name in ("confidence", "unk_share", "length"):
            check.detail["reference_sampled_from"] = reference.train_rows if check.name == "length" else \
                reference.test_rows
    return checks


def summarise(span: Window, traffic: Traffic, checks: list[drift.Check],
              queue: list[dict[str, Any]]) -> dict[str, Any]:
    """What metrics/monitor.json holds; `queue` is feedback_data.review_queue's for the same window."""
    return {
        "window": span.as_dict(),
        "rows": traffic.rows,
        "models": traffic.models,
        "drift_detected": any(c.drifted for c in checks),
        "drifted": [c.name for c in checks if c.drifted],
        "checks": {c.name: asdict(c) for c in checks},
        "review_queue": queue,
    }

"""Drift and health checks: a window of logged predictions against the data the model was trained and tested on.

Each check gives one figure, a stated threshold and a verdict; the window has drifted when any check fails.
A threshold is the larger of an effect size (so a busy service does not alarm on differences too small to
matter) and what chance alone reaches for a window of this size (so a quiet hour does not alarm on noise):
the 99.8th percentile of the figure over 1000 random windows of the same size drawn from the reference
itself (0.2% a check, so about 1% for the four checks together).
bench/RESULTS.md records the false-alarm rate over in-distribution windows and the window size each kind
of shift needs.

- text: a domain classifier (character 1-2-gram TF-IDF + logistic regression, 5-fold cross-validated ROC AUC)
  tells reference texts from the window's, as Evidently does for text columns. Characters, not words, so
  Chinese (no spaces) and English both work. Drift when the AUC clears both 0.55 and a random classifier's
  AUC by 3 standard deviations for these sample sizes (so small windows need stronger evidence).
- labels: Jensen-Shannon distance between predicted labels and the train labels (effect size 0.1).
- confidence: Wasserstein distance between the window's top-label scores and the model's on the test split,
  in units of the test split's standard deviation (effect size 0.25).
- length and unknown tokens: the same normalised Wasserstein distance for characters per text (0.25), and the
  gap in the share of tokens the tokenizer maps to [UNK], against the test split (the tokenizer was fitted on
  the train split, so that has none of the words it never saw) (0.02, two points).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

MIN_ROWS = 20  # fewer rows than this in the window: no verdict (exit 2 in pipelines.monitor)
TEXT_REFERENCE_ROWS = 2000
TEXT_CURRENT_ROWS = 5000  # a busier window is sampled down: the classifier's cost grows with the rows
# 0.998: four chance-calibrated checks at 0.2% each keep a healthy window's false-alarm chance near 1%.
NULL_DRAWS, NULL_QUANTILE = 1000, 0.998
NULL_MAX_ROWS = 20_000


class Thresholds(BaseModel):
    """The effect sizes (and the text check's evidence) a check needs before it alarms; pipelines.monitor reads
    them from params.yaml's `monitor` section."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    text_auc_floor: float = Field(0.55, gt=0.5, le=1, description="domain classifier ROC AUC")
    text_auc_sigmas: float = Field(3.0, ge=0, description="a random classifier's AUC standard deviations")
    labels_js: float = Field(0.1, gt=0, le=1, description="Jensen-Shannon distance of the label shares")
    confidence_wasserstein: float = Field(0.25, gt=0, description="in test-split standard deviations")
    length_wasserstein: float = Field(0.25, gt=0, description="in train-split standard deviations")
    unk_share_gap: float = Field(0.02, gt=0, le=1, description="[UNK] share of tokens, window minus test split")


DEFAULT_THRESHOLDS = Thresholds()


@dataclass
class Check:
    name: str
    figure: float | None
    threshold: float | None
    drifted: bool
    method: str
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # numpy scalars in, plain JSON-ready values out
        self.drifted = bool(self.drifted)
        self.figure = None if self.figure is None else float(self.figure)
        self.threshold = None if self.threshold is None else float(self.threshold)


def null_auc_sigma(n_ref: int, n_cur: int) -> float:
    """Standard deviation of a random classifier's ROC AUC (Mann-Whitney U under the null)."""
    return math.sqrt((n_ref + n_cur + 1) / (12.0 * n_ref * n_cur))


def text_drift(reference: Sequence[str], current: Sequence[str], seed: int = 0,
               thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Check:
    """Domain classifier between reference and current texts, cross-validated ROC AUC."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(seed)
    ref = list(reference)
    if len(current) > TEXT_CURRENT_ROWS:
        current = [current[i] for i in rng.choice(len(current), TEXT_CURRENT_ROWS, replace=False)]
    if len(ref) > max(len(current), TEXT_REFERENCE_ROWS):
        ref = [ref[i] for i in rng.choice(len(ref), max(len(current), TEXT_REFERENCE_ROWS), replace=False)]
    y = np.r_[np.zeros(len(ref)), np.ones(len(current))]
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x = vectorizer.fit_transform(ref + list(current))
    classifier = LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced")
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    scores = cross_val_predict(classifier, x, y, cv=folds, method="decision_function")
    auc = float(roc_auc_score(y, scores))
    sigma = null_auc_sigma(len(ref), len(current))
    threshold = max(thresholds.text_auc_floor, 0.5 + thresholds.text_auc_sigmas * sigma)
    classifier.fit(x, y)
    weights = classifier.coef_[0]
    names = vectorizer.get_feature_names_out()
    top = [str(names[i]) for i in np.argsort(-weights)[:15] if weights[i] > 0]
    return Check("text", auc, threshold, auc > threshold, "domain classifier ROC AUC (char 1-2-gram TF-IDF + "
                 "logistic regression, 5-fold)", {"rows": len(current), "reference_rows": len(ref),
                                                 "null_sigma": sigma, "marks_current": top})


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(p, q, base=2))


_chance_levels: dict[tuple[str, int, int], float] = {}


def chance_level(key: tuple[str, int], figure_of_sample, n: int, seed: int = 0) -> float:
    """The figure's 99.8th percentile over random windows of n drawn from the reference: what noise reaches.

    Remembered per (check, reference, n) in this process: repeated reports (benchmarks) pay for it once. A window
    larger than NULL_MAX_ROWS is drawn at that size: noise only shrinks with more rows, so the level stays an
    upper bound, and a day of a busy service costs what a quiet hour does (the effect sizes decide there anyway)."""
    n = min(n, NULL_MAX_ROWS)
    cache_key = (*key, n)
    if cache_key not in _chance_levels:
        rng = np.random.default_rng(seed)
        draws = [figure_of_sample(rng, n) for _ in range(NULL_DRAWS)]
        _chance_levels[cache_key] = float(np.quantile(draws, NULL_QUANTILE))
    return _chance_levels[cache_key]


def _fingerprint(values: np.ndarray) -> int:
    return hash(np.asarray(values).tobytes())


def label_drift(train_labels: Mapping[str, int], predicted: Mapping[str, int], labels: Sequence[str],
                thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Check:
    """`train_labels`: train rows per label; `predicted`: the window's rows per predicted label."""
    ref = np.array([train_labels.get(lab, 0) for lab in labels], dtype=float)
    cur = np.array([predicted.get(lab, 0) for lab in labels], dtype=float)
    share = ref / ref.sum()
    figure = js_distance(share, cur / max(cur.sum(), 1))
    noise = chance_level(("labels", _fingerprint(share)),
                         lambda rng, n: js_distance(share, rng.multinomial(n, share) / n), int(cur.sum()))
    threshold = max(thresholds.labels_js, noise)
    return Check("labels", figure, threshold, figure > threshold,
                 "Jensen-Shannon distance, predicted labels vs train labels",
                 {"rows": int(cur.sum()), "train_rows": int(ref.sum()),
                  "train_share": dict(zip(labels, share.round(4).tolist(), strict=True)),
                  "current_share": dict(zip(labels, (cur / max(cur.sum(), 1)).round(4).tolist(), strict=True))})


def normed_wasserstein(reference: Sequence[float], current: Sequence[float],
                       weights: Sequence[float] | None = None) -> float:
    from scipy.stats import wasserstein_distance

    spread = float(np.std(reference)) or 1.0
    return float(wasserstein_distance(reference, current, v_weights=weights) / spread)


def numeric_drift(name: Literal["confidence", "length"], reference: Sequence[float], values: Sequence[float],
                  rows: Sequence[float], what: str, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Check:
    """The window as a distribution: each of `values` seen in `rows[i]` rows (counts from the database)."""
    figure = normed_wasserstein(reference, values, rows)
    ref = np.asarray(reference, dtype=float)
    n = int(np.sum(rows))
    noise = chance_level((name, _fingerprint(ref)),
                         lambda rng, n: normed_wasserstein(ref, rng.choice(ref, n, replace=True)), n)
    threshold = max(getattr(thresholds, f"{name}_wasserstein"), noise)
    return Check(name, figure, threshold, figure > threshold, f"Wasserstein distance / reference std, {what}",
                 {"rows": n, "reference_rows": len(ref), "reference_mean": float(np.mean(reference)),
                  "current_mean": float(np.average(values, weights=rows))})


def unk_drift(ref_tokens: Sequence[int], ref_unk: Sequence[int], cur_tokens: int, cur_unk: int,
              thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Check:
    """`cur_tokens`, `cur_unk`: the window's totals."""
    ref_share = sum(ref_unk) / max(sum(ref_tokens), 1)
    cur_share = cur_unk / max(cur_tokens, 1)
    gap = cur_share - ref_share
    return Check("unk_share", gap, thresholds.unk_share_gap, gap > thresholds.unk_share_gap,
                 "share of [UNK] tokens, window minus test split",
                 {"tokens": cur_tokens, "reference_rows": len(ref_tokens), "reference_tokens": int(sum(ref_tokens)),
                  "reference_share": ref_share, "current_share": cur_share})

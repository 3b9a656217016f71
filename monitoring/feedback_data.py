"""Feedback as data: the export and review-queue tables, the DVC-tracked snapshot, and its merge into a corpus.

Feedback reaches training only through the snapshot file (`data/feedback/feedback.parquet`, tracked by
`dvc add`), so every model can be traced to the exact feedback it saw and `dvc repro` stays reproducible.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from serving.contract import score_column
from serving.store import FEEDBACK_COLUMNS, Store
from training.cleaning import normalise

SNAPSHOT = Path("data/feedback/feedback.parquet")
EXPORT_COLUMNS = ["id", "text", "label", "predicted", "model_version", "created", "updated", "text_sha256"]
QUEUE_COLUMNS = ["id", "text", "predicted", "score", "model_version", "created", "count", "label"]  # + score_<label>


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def feedback_frame(store: Store) -> pd.DataFrame:
    """Every feedback row with the text it labels, times as ISO-8601 UTC."""
    frame = pd.DataFrame(store.feedback(), columns=list(FEEDBACK_COLUMNS))
    for column in ("created", "updated"):
        frame[column] = [iso(t) for t in frame[column]]
    return frame[EXPORT_COLUMNS]


def text_key(text: str | None, text_sha256: str) -> str:
    """What makes two logged texts the same text: the normalised text, or the hash when only a hash was logged."""
    return normalise(text) if text else f"sha256:{text_sha256}"


def review_queue(store: Store, since: float, until: float, limit: int) -> list[dict[str, Any]]:
    """The texts a person should label first: the window's least confident predictions, one row per distinct
    normalised text, skipping texts already labelled (under any id). Ties in uncertainty go to the text seen
    most often (`count`, its predictions in the window), so a label fixes the most traffic. The monitor's
    report and `pipelines.feedback queue` both show this queue.

    Each row keeps the id of the text's least confident prediction: feedback for that id labels the text (the
    snapshot merges by normalised text). `label` is left empty for a person to fill in."""
    labelled = {text_key(row["text"], row["text_sha256"]) for row in store.feedback()}
    groups: dict[str, dict[str, Any]] = {}
    cutoff = None
    for p in store.least_confident(since, until):
        key = text_key(p.text, p.text_sha256)
        if key in labelled:
            continue
        score = round(p.score, 4)
        if key in groups:
            groups[key]["hashes"].add(p.text_sha256)
            continue
        if cutoff is not None and score > cutoff:  # every text tied with the last place is in: stop
            break
        groups[key] = {"id": p.id, "text": p.text, "predicted": p.label, "score": score,
                       **{score_column(k): round(v, 4) for k, v in p.scores.items()},
                       "model_version": p.model_version, "created": iso(p.created), "hashes": {p.text_sha256}}
        if len(groups) == limit:
            cutoff = score
    counts = store.text_counts(since, until, (h for g in groups.values() for h in g["hashes"]))
    rows = [{**{k: v for k, v in g.items() if k != "hashes"}, "count": sum(counts.get(h, 0) for h in g["hashes"]),
             "label": ""} for g in groups.values()]
    return sorted(rows, key=lambda r: (r["score"], -r["count"]))[:limit]


@dataclass(frozen=True)
class Snapshot:
    path: Path
    rows: int
    without_text: int  # logged with TEXTCLF_LOG_TEXTS=false: nothing to train on


def write_snapshot(store: Store, path: Path = SNAPSHOT) -> Snapshot:
    """Freeze all feedback with text into one Parquet file (replaced each time; DVC keeps the versions)."""
    frame = feedback_frame(store)
    has_text = frame["text"].notna() & (frame["text"] != "")
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = frame[has_text].sort_values(["created", "id"]).reset_index(drop=True)
    kept.drop(columns="text_sha256").to_parquet(path, index=False)  # the snapshot has the texts themselves
    return Snapshot(path, len(kept), int((~has_text).sum()))


class FeedbackMerge:
    """Feedback merged into a corpus read in batches: a feedback label wins over a corpus label for the same
    text, and the feedback rows join at the end.

    Texts are compared after the cleaning step's `normalise`, so the same review typed with full-width
    punctuation still counts as the same text. For a text labelled twice in feedback the latest label wins."""

    def __init__(self, feedback: pd.DataFrame) -> None:
        fb = feedback.assign(key=feedback["text"].map(normalise))
        self.rows = fb[fb["key"] != ""].sort_values("updated").drop_duplicates("key", keep="last")
        self.truth = dict(zip(self.rows["key"], self.rows["label"], strict=True))
        self.counts = {"rows": len(feedback), "texts": len(self.rows), "already_in_corpus": 0,
                       "labels_overridden": 0, "superseded_or_empty": len(feedback) - len(self.rows)}

    def apply(self, corpus: pd.DataFrame) -> pd.DataFrame:
        """One batch of corpus rows (text, label) with feedback labels in place of theirs."""
        keys = corpus["text"].map(normalise)
        in_feedback = keys.isin(self.truth.keys())
        new_labels = keys.map(self.truth)
        self.counts["already_in_corpus"] += int(in_feedback.sum())
        self.counts["labels_overridden"] += int((in_feedback & (new_labels != corpus["label"].map(normalise))).sum())
        merged = corpus.copy()
        merged.loc[in_feedback, "label"] = new_labels[in_feedback]
        return merged

    def tail(self) -> pd.DataFrame:
        """The feedback rows themselves, after the corpus."""
        return self.rows[["text", "label"]].reset_index(drop=True)


"""What a window of traffic is compared with, read in bounded memory whatever the corpus's size.

The reference is the train split (its label shares, and a seeded sample of its texts and lengths) plus what the
served bundle does with a seeded sample of the test split: its confidence and its tokenizer's [UNK] share. The
tokenizer and the model were fitted on train texts, so only held-out texts show the confidence and the unknown
words a healthy window should have. The label shares are counted over the whole train split, a column at a
time; everything else rests on a sample, and the report says how many rows each figure rests on.

A split no larger than its sample is read whole and in order, so a small corpus (the built-in one) gives the
same reference as reading the files whole.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from serving.contract import UNK_ID
from serving.prediction_log import token_stats
from training.prepare import read_batches

# Train texts behind the text and length checks: the text check reads at most a few thousand of them
# (drift.TEXT_REFERENCE_ROWS, TEXT_CURRENT_ROWS), and 20k lengths pin a distribution to well under the
# effect size, while the chance level's 1000 draws stay a few seconds.
TRAIN_SAMPLE_ROWS = 20_000
# Test texts the served model scores for the confidence and [UNK] references: scoring is the reference's
# main cost (an ensemble bundle runs every member), and 5k is three times the built-in corpus's test split.
TEST_SAMPLE_ROWS = 5_000


@dataclass(frozen=True)
class Reference:
    texts: list[str]  # a seeded sample of the train split
    labels: dict[str, int]  # train rows per label: the whole split
    n_chars: np.ndarray  # characters per sampled train text
    n_tokens: np.ndarray  # per sampled test-split text
    n_unk: np.ndarray
    confidence: np.ndarray  # the model's top-label probability on the sampled test texts
    model_labels: tuple[str, ...]
    test_rows: int  # the test split's size its sample stands for

    @property
    def train_rows(self) -> int:
        """The train split's size its sample stands for: its labels are counted whole."""
        return sum(self.labels.values())


def sample_rows(path: Path, n: int, seed: int = 0, columns: tuple[str, ...] = ("text",)) -> pa.Table:
    """n rows of a Parquet file drawn uniformly without replacement (seeded), in file order, one record batch
    in memory at a time; every row when the file has no more than n."""
    rows = pq.ParquetFile(path).metadata.num_rows
    if rows <= n:
        return pq.read_table(path, columns=list(columns))
    wanted = np.sort(np.random.default_rng(seed).choice(rows, n, replace=False))
    parts, start = [], 0
    for batch in read_batches(path, columns=columns):
        lo, hi = np.searchsorted(wanted, [start, start + len(batch)])
        if hi > lo:
            parts.append(batch.take(pa.array(wanted[lo:hi] - start)))
        start += len(batch)
    return pa.Table.from_batches(parts)


def label_counts(path: Path) -> dict[str, int]:
    """Rows per label over the whole file, reading the label column a batch at a time."""
    counts: Counter[str] = Counter()
    for batch in read_batches(path, columns=("label",)):
        for item in pc.value_counts(batch.column(0)).to_pylist():
            counts[str(item["values"])] += item["counts"]
    return dict(counts)


def token_counts(predictor: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    stats = [token_stats(text, ids, UNK_ID) for text, ids in zip(texts, predictor.encode(texts), strict=True)]
    return np.array([s[0] for s in stats]), np.array([s[1] for s in stats])


def load_reference(data_dir: Path, predictor: Any, train_rows: int = TRAIN_SAMPLE_ROWS,
                   test_rows: int = TEST_SAMPLE_ROWS, seed: int = 0) -> Reference:
    """The train split's label counts and a sample of its texts, and the served model on a sample of test."""
    paths = {name: data_dir / f"{name}.parquet" for name in ("train", "test")}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not found: the monitor compares traffic with the train "
                                "split; run `dvc repro` (or `dvc pull`) first, or pass --data")
    texts = [str(t) for t in sample_rows(paths["train"], train_rows, seed).column("text").to_pylist()]
    held_out = [str(t) for t in sample_rows(paths["test"], test_rows, seed).column("text").to_pylist()]
    n_tokens, n_unk = token_counts(predictor, held_out)
    confidence = predictor.probabilities(held_out).max(axis=1)
    return Reference(texts, label_counts(paths["train"]), np.array([len(t) for t in texts]), n_tokens, n_unk,
                     confidence, tuple(predictor.labels), pq.ParquetFile(paths["test"]).metadata.num_rows)

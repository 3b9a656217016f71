"""Cleaning and splitting a corpus: normalise, drop with a reason, split without leakage.

Rows are compared by a 64-bit hash of their normalised text, so de-duplication, conflicting labels and the
split work on arrays of hashes and label codes (16 bytes a row) and never need every text in memory. Two
splits: `stratified` (seeded per-class shuffle and cut, the default for corpora up to AUTO_HASH_ROWS) and
`hash` (a text's split comes from a seeded hash of the text alone, so it never depends on the rest of the
corpus: reordering or growing the corpus moves no text between splits).
"""

from __future__ import annotations

import hashlib
import itertools
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")
DROP_REASONS = ("unreadable", "missing_label", "empty_text", "conflicting_label", "duplicate")
# split: auto takes the hash split from this many kept rows on: at that size every class fills every split,
# and a stratified cut would move texts between splits whenever rows are added.
AUTO_HASH_ROWS = 200_000


class SplitError(ValueError):
    """Nothing, or too little, is left to make train/val/test splits."""


def normalise(text: object) -> str:
    """NFKC (full-width → half-width, compatibility forms) and one space between words."""
    if not isinstance(text, str):  # None, or NaN where pandas filled a missing cell
        return ""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def text_hashes(texts: Iterable[str], key: str = "") -> np.ndarray:
    """64-bit BLAKE2b of each text (keyed by `key`): the same on every machine and Python version."""
    k = key.encode()
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8, key=k).digest(), "little")
         for t in texts), dtype=np.uint64)


def drop_masks(keys: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(conflicting, duplicate) masks over rows: a text seen with two labels is dropped everywhere (it teaches
    nothing and would leak a contradiction into the splits); of the rest, every copy but the first."""
    order = np.argsort(keys, kind="stable")  # equal texts side by side, in the order they were read
    sorted_keys, sorted_labels = keys[order], labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(keys)]))
    low = np.minimum.reduceat(sorted_labels, starts) if len(keys) else sorted_labels
    high = np.maximum.reduceat(sorted_labels, starts) if len(keys) else sorted_labels
    conflicting, duplicate = np.zeros(len(keys), bool), np.zeros(len(keys), bool)
    conflicting[order] = (low != high)[group]
    first = np.zeros(len(keys), bool)
    first[order[starts]] = True
    duplicate[:] = ~first & ~conflicting
    return conflicting, duplicate


@dataclass
class CleanResult:
    frame: pd.DataFrame
    dropped: dict[str, int] = field(default_factory=dict)


def clean(raw: pd.DataFrame, unreadable: int = 0) -> CleanResult:
    """Normalise, then drop rows per reason; every row read lands either in `frame` or in `dropped`."""
    frame = pd.DataFrame({"text": raw["text"].map(normalise), "label": raw["label"].map(normalise)})
    missing, empty = frame["label"] == "", (frame["label"] != "") & (frame["text"] == "")
    frame = frame[~missing & ~empty]
    codes = pd.factorize(frame["label"])[0]
    conflicting, duplicate = drop_masks(text_hashes(frame["text"]), codes)
    dropped = {"unreadable": unreadable, "missing_label": int(missing.sum()), "empty_text": int(empty.sum()),
               "conflicting_label": int(conflicting.sum()), "duplicate": int(duplicate.sum())}
    return CleanResult(frame[~conflicting & ~duplicate].reset_index(drop=True), dropped)


def _cut(n: int, val_ratio: float, test_ratio: float, label: str) -> tuple[int, int]:
    if n < 3:
        raise SplitError(f"class '{label}' has {n} row(s) after cleaning; each class needs at least 3 "
                         "(one per split): add examples or remove the class")
    n_test, n_val = max(1, round(n * test_ratio)), max(1, round(n * val_ratio))
    return (1, 1) if n - n_test - n_val < 1 else (n_val, n_test)


def stratified_positions(labels: np.ndarray, names: list[str], val_ratio: float, test_ratio: float,
                         seed: int) -> dict[str, np.ndarray]:
    """Row positions of each split, in the split's order: per class (classes in the order of `names`, labels
    being codes into it) a seeded shuffle and cut, then each split shuffled."""
    if len(labels) == 0:
        raise SplitError("nothing is left after cleaning: check the corpus and the report's drop counts")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for code in np.unique(labels):
        rows = np.flatnonzero(labels == code)
        n_val, n_test = _cut(len(rows), val_ratio, test_ratio, names[code])
        order = rows[rng.permutation(len(rows))]
        parts["test"].append(order[:n_test])
        parts["val"].append(order[n_test:n_test + n_val])
        parts["train"].append(order[n_test + n_val:])
    # pandas' sample(frac=1) as before, so a corpus splits exactly as it always has
    return {s: pd.Series(np.concatenate(p)).sample(frac=1.0, random_state=seed).to_numpy() for s, p in parts.items()}


def hash_positions(split_keys: np.ndarray, labels: np.ndarray, names: list[str], val_ratio: float,
                   test_ratio: float) -> dict[str, np.ndarray]:
    """Row positions of each split: test where the text's seeded hash falls in the first `test_ratio` of the
    hash range, val in the next `val_ratio`; each split ordered by that hash (a stable pseudo-random order)."""
    if len(labels) == 0:
        raise SplitError("nothing is left after cleaning: check the corpus and the report's drop counts")
    u = split_keys.astype(np.float64) / 2.0**64
    which = np.where(u < test_ratio, 2, np.where(u < test_ratio + val_ratio, 1, 0))
    out = {}
    for i, name in enumerate(SPLITS):
        rows = np.flatnonzero(which == i)
        out[name] = rows[np.argsort(split_keys[rows], kind="stable")]
        missing = sorted(set(range(len(names))) - set(np.unique(labels[rows]).tolist()))
        if missing:
            raise SplitError(f"the hash split left class(es) {', '.join(names[m] for m in missing)} without a "
                             f"{name} row: add examples, raise the split ratios, or set preprocess.split: stratified")
    return out


def stratified_split(frame: pd.DataFrame, val_ratio: float, test_ratio: float, seed: int) -> dict[str, pd.DataFrame]:
    """A cleaned frame's seeded stratified split (every split keeps the class balance of the whole)."""
    names = sorted(frame["label"].unique())
    codes = pd.Categorical(frame["label"], categories=names).codes
    positions = stratified_positions(np.asarray(codes), names, val_ratio, test_ratio, seed)
    splits = {s: frame.iloc[p].reset_index(drop=True) for s, p in positions.items()}
    assert_disjoint(splits)
    return splits


def assert_disjoint(splits: dict[str, pd.DataFrame]) -> None:
    """Check, not assume, that no text sits in two splits."""
    for a, b in itertools.combinations(splits, 2):
        shared = set(splits[a]["text"]) & set(splits[b]["text"])
        if shared:
            raise SplitError(f"{len(shared)} text(s) sit in both {a} and {b}, e.g. {next(iter(shared))!r}")


def assert_keys_disjoint(keys: dict[str, np.ndarray]) -> None:
    """The same check on the splits' text hashes, for corpora too big to hold as sets of strings."""
    for a, b in itertools.combinations(keys, 2):
        shared = np.intersect1d(keys[a], keys[b])
        if len(shared):
            raise SplitError(f"{len(shared)} text(s) sit in both {a} and {b}")

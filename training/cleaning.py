"""Cleaning and splitting a raw corpus: normalise, drop with a reason, stratified leakage-free split."""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Why a row is dropped, in the order the rules apply (after "unreadable": rows the reader could not parse).
DROP_RULES: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "missing_label": lambda frame: frame["label"] == "",
    "empty_text": lambda frame: frame["text"] == "",
    # A text seen with two labels teaches nothing and would leak a contradiction into the splits.
    "conflicting_label": lambda frame: frame.groupby("text")["label"].transform("nunique") > 1,
    "duplicate": lambda frame: frame.duplicated("text", keep="first"),
}


class SplitError(ValueError):
    """Nothing, or too little, is left to make train/val/test splits."""


def normalise(text: object) -> str:
    """NFKC (full-width → half-width, compatibility forms) and one space between words."""
    if not isinstance(text, str):  # None, or NaN where pandas filled a missing cell
        return ""
    return " ".join(unicodedata.normalize("NFKC", text).split())


@dataclass
class CleanResult:
    frame: pd.DataFrame
    dropped: dict[str, int] = field(default_factory=dict)


def clean(raw: pd.DataFrame, unreadable: int = 0) -> CleanResult:
    """Normalise, then drop rows per reason; every row read lands either in `frame` or in `dropped`."""
    frame = pd.DataFrame({"text": raw["text"].map(normalise), "label": raw["label"].map(normalise)})
    dropped = {"unreadable": unreadable}
    for reason, rule in DROP_RULES.items():
        drop = rule(frame)
        dropped[reason] = int(drop.sum())
        frame = frame[~drop]
    return CleanResult(frame.reset_index(drop=True), dropped)


def stratified_split(
    frame: pd.DataFrame, val_ratio: float, test_ratio: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Seeded per-class shuffle and cut, so every split keeps the class balance of the whole."""
    if frame.empty:
        raise SplitError("nothing is left after cleaning: check the corpus and the report's drop counts")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[pd.DataFrame]] = {"train": [], "val": [], "test": []}
    for label, group in frame.groupby("label"):  # sorted by label
        n = len(group)
        if n < 3:
            raise SplitError(
                f"class '{label}' has {n} row(s) after cleaning; each class needs at least 3 "
                "(one per split): add examples or remove the class"
            )
        order = rng.permutation(n)
        n_test = max(1, round(n * test_ratio))
        n_val = max(1, round(n * val_ratio))
        if n - n_test - n_val < 1:
            n_val, n_test = 1, 1
        parts["test"].append(group.iloc[order[:n_test]])
        parts["val"].append(group.iloc[order[n_test : n_test + n_val]])
        parts["train"].append(group.iloc[order[n_test + n_val :]])
    splits = {
        name: pd.concat(chunks).sample(frac=1.0, random_state=seed).reset_index(drop=True)
        for name, chunks in parts.items()
    }
    assert_disjoint(splits)
    return splits


def assert_disjoint(splits: dict[str, pd.DataFrame]) -> None:
    """Check, not assume, that no text sits in two splits."""
    for a, b in itertools.combinations(splits, 2):
        shared = set(splits[a]["text"]) & set(splits[b]["text"])
        if shared:
            raise SplitError(f"{len(shared)} text(s) sit in both {a} and {b}, e.g. {next(iter(shared))!r}")

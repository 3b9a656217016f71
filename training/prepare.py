"""The corpus from ingest's Parquet to the splits, streamed: normalise and drop in record batches, decide
duplicates, conflicts and the split on arrays of hashes, then write each split and its token ids.

Memory holds one batch of texts and 20 bytes a row (two hashes and a label code); the normalised texts wait
in a memory-mapped Arrow file between the two passes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from training.cleaning import (
    AUTO_HASH_ROWS,
    DROP_REASONS,
    SPLITS,
    assert_keys_disjoint,
    drop_masks,
    hash_positions,
    normalise,
    stratified_positions,
    text_hashes,
)

BATCH_ROWS = 100_000
SCHEMA = pa.schema([("text", pa.string()), ("label", pa.string())])


@dataclass
class Prepared:
    """What the splits hold and why rows were dropped, for preprocess's report."""

    labels: list[str]  # label order: sorted label strings (the models' output order)
    dropped: dict[str, int]
    kept: int
    split_sizes: dict[str, int]
    split_labels: dict[str, dict[str, int]]
    split: dict[str, str] = field(default_factory=dict)  # method and why


@dataclass
class _Pass:
    keys: list[np.ndarray] = field(default_factory=list)
    split_keys: list[np.ndarray] = field(default_factory=list)
    codes: list[np.ndarray] = field(default_factory=list)
    names: dict[str, int] = field(default_factory=dict)
    missing_label: int = 0
    empty_text: int = 0


def read_batches(path: Path, batch_rows: int = BATCH_ROWS, columns: tuple[str, ...] = ("text", "label"),
                 limit: int | None = None) -> Iterator[pa.RecordBatch]:
    """A Parquet file's record batches, the first `limit` rows at most."""
    left = limit
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=list(columns)):
        if left is not None:
            if left <= 0:
                return
            batch, left = batch.slice(0, left), left - len(batch)
        yield batch


def iter_texts(path: Path, limit: int | None = None) -> Iterator[str]:
    """A split's texts one by one, read a batch at a time."""
    for batch in read_batches(path, columns=("text",), limit=limit):
        yield from batch.column(0).to_pylist()


def _first_pass(corpus: Path, scratch: Path, seed: int) -> _Pass:
    """Normalise every row, count the rows with no label or no text, and keep the rest (with their hashes)."""
    state = _Pass()
    with pa.OSFile(str(scratch), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:
        for batch in read_batches(corpus):
            texts = [normalise(t) for t in batch.column(0).to_pylist()]
            labels = [normalise(t) for t in batch.column(1).to_pylist()]
            keep = [bool(lab and text) for text, lab in zip(texts, labels, strict=True)]
            state.missing_label += sum(not lab for lab in labels)
            state.empty_text += sum(bool(lab) and not text for text, lab in zip(texts, labels, strict=True))
            texts = [t for t, k in zip(texts, keep, strict=True) if k]
            labels = [lab for lab, k in zip(labels, keep, strict=True) if k]
            writer.write_batch(pa.record_batch([pa.array(texts, pa.string()), pa.array(labels, pa.string())],
                                               schema=SCHEMA))
            state.keys.append(text_hashes(texts))
            state.split_keys.append(text_hashes(texts, key=f"split-{seed}"))
            state.codes.append(np.fromiter((state.names.setdefault(lab, len(state.names)) for lab in labels),
                                           dtype=np.int32, count=len(labels)))
    return state


def choose_split(method: str, kept: int) -> dict[str, str]:
    if method != "auto":
        return {"method": method, "reason": f"preprocess.split is {method}"}
    if kept >= AUTO_HASH_ROWS:
        return {"method": "hash", "reason": f"{kept} texts kept (≥ {AUTO_HASH_ROWS}): a text's split comes from a "
                "seeded hash of the text alone, so growing or reordering the corpus moves no text between splits"}
    return {"method": "stratified", "reason": f"{kept} texts kept (< {AUTO_HASH_ROWS}): seeded per-class shuffle "
            "and cut, so every split keeps the class balance exactly"}


def prepare_splits(corpus: Path, out: Path, method: str, val_ratio: float, test_ratio: float, seed: int,
                   unreadable: int = 0) -> Prepared:
    """Ingest's corpus.parquet → out/{train,val,test}.parquet (text, label), streamed."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".normalised-") as tmp:
        scratch = Path(tmp) / "rows.arrow"
        state = _first_pass(corpus, scratch, seed)
        keys, split_keys = np.concatenate([*state.keys, np.zeros(0, np.uint64)]), np.concatenate(
            [*state.split_keys, np.zeros(0, np.uint64)])
        names = sorted(state.names)
        remap = np.array([names.index(n) for n in state.names], dtype=np.int32)
        codes = remap[np.concatenate([*state.codes, np.zeros(0, np.int32)])]
        conflicting, duplicate = drop_masks(keys, codes)
        kept = np.flatnonzero(~conflicting & ~duplicate)
        split = choose_split(method, len(kept))
        if split["method"] == "hash":
            local = hash_positions(split_keys[kept], codes[kept], names, val_ratio, test_ratio)
        else:
            local = stratified_positions(codes[kept], names, val_ratio, test_ratio, seed)
        positions = {s: kept[p] for s, p in local.items()}
        assert_keys_disjoint({s: keys[p] for s, p in positions.items()})
        with pa.memory_map(str(scratch)) as source:
            rows = pa.ipc.open_file(source).read_all()  # mapped, not read: pages come in as `take` touches them
            for name, pos in positions.items():
                _write_split(rows, pos, out / f"{name}.parquet")
            del rows
    dropped = dict.fromkeys(DROP_REASONS, 0) | {
        "unreadable": unreadable, "missing_label": state.missing_label, "empty_text": state.empty_text,
        "conflicting_label": int(conflicting.sum()), "duplicate": int(duplicate.sum())}
    return Prepared(
        labels=names, dropped=dropped, kept=len(kept), split=split,
        split_sizes={s: len(positions[s]) for s in SPLITS},
        split_labels={s: {names[c]: int(n) for c, n in enumerate(np.bincount(codes[positions[s]],
                                                                            minlength=len(names))) if n}
                      for s in SPLITS},
    )


def _write_split(rows: pa.Table, positions: np.ndarray, path: Path) -> None:
    with pq.ParquetWriter(path, SCHEMA) as writer:
        for start in range(0, len(positions), BATCH_ROWS):
            writer.write_table(rows.take(pa.array(positions[start:start + BATCH_ROWS])))
        if not len(positions):
            writer.write_table(SCHEMA.empty_table())

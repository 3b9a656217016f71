"""Batch scoring with the exported bundle: `python -m pipelines.predict INPUT OUTPUT`.

    python -m pipelines.predict reviews.csv scored.csv [--text-column text] [--model artifacts/bundle]
                                [--overwrite] [--chunk-size 10000] [--no-progress]

Reads CSV, TSV, JSONL (.jsonl/.ndjson) or Parquet, chosen by the input's suffix, and writes the same format
(the output's suffix must name that format too). The file is streamed chunk by chunk, so memory stays flat
whatever its size. Every input column is kept, in order, and `label` plus one float `score_<label>` column per
label are appended; an input that already has one of those columns is refused.

Texts are treated as POST /classify treats them: any string is scored, the empty and whitespace-only ones
included (the service accepts "" and scores it as a lone [UNK] token). A text that is missing (null, an absent
JSONL key) or not a string (a number in JSONL or Parquet) cannot be sent to the service at all, so here it is
passed through with an empty label and empty scores, counted and reported at the end; it never stops the job.
The service's max_chars limit guards request size, not the model (the predictor truncates to max_len tokens),
so long texts are scored here. A structurally broken file (invalid JSON line, ragged CSV) is an error.

CSV and TSV are read with every column as a string and no NA parsing, so values round-trip unchanged ("007" and
"NA" stay as they are); an empty CSV cell is therefore an empty text and is scored. JSONL records are kept as
parsed JSON (key order, nested values, ints), Parquet batches as Arrow (types and schema metadata).

The output appears atomically: rows go to `.OUTPUT.partial-<pid>` in the output's folder, which is renamed onto
OUTPUT at the end and removed on any error or interrupt; a killed job never leaves a file under OUTPUT's name.

Imports no torch: only pandas, pyarrow, numpy, tqdm (when installed) and serving.predictor.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.cli import run
from serving.contract import BundleError, score_columns
from serving.predictor import OnnxPredictor, score_rows

log = logging.getLogger("textclf.predict")

SUFFIXES = {
    ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet",
}
KNOWN = ".csv, .tsv, .jsonl, .ndjson or .parquet"
SHOWN_BAD_ROWS = 5  # row numbers quoted in the warning; the count covers them all
LOG_EVERY_S = 30.0  # without a progress bar (not a terminal), a progress line this often


class Scorer(Protocol):
    """What predict needs from a model: OnnxPredictor, or anything shaped like it (benches, tests)."""

    labels: Sequence[str]

    def probabilities(self, texts: Sequence[str]) -> np.ndarray: ...


# ---------------------------------------------------------------- paths and model


def check_paths(input: str | Path, output: str | Path, overwrite: bool = False) -> str:
    """Validate INPUT and OUTPUT before any work; return the format name. Errors name the file and the fix."""
    src, dst = Path(input), Path(output)
    if not src.exists():
        raise FileNotFoundError(f"input {src} not found")
    if not src.is_file():
        raise ValueError(f"input {src} is not a file")
    fmt = SUFFIXES.get(src.suffix.lower())
    if fmt is None:
        raise ValueError(f"input {src}: unknown format '{src.suffix}'; use {KNOWN}")
    out_fmt = SUFFIXES.get(dst.suffix.lower())
    if out_fmt != fmt:
        what = f"is {out_fmt}" if out_fmt else f"'{dst.suffix}' is not a known format"
        raise ValueError(f"output {dst} {what}, but the input {src} is {fmt} and predict writes the input's "
                         f"format: name the output *{src.suffix}")
    if dst.is_dir():
        raise ValueError(f"output {dst} is a folder; give a file name")
    if dst.exists() and not overwrite:
        raise ValueError(f"output {dst} already exists; pass --overwrite to replace it")
    return fmt


def load_model(model: str, threads: int = 0) -> OnnxPredictor:
    """A bundle folder, or `models:/name@alias` from the MLflow registry (needs the train extra); onnxruntime
    uses `threads` intra-op threads (0: one per core), as one process here has the machine to itself."""
    threads = threads or os.cpu_count() or 1
    try:
        if model.startswith("models:/"):
            try:
                from serving.pyfunc import load_predictor  # lazy: pulls in mlflow, which bundle users don't need
            except ImportError as err:
                raise ValueError(f"--model {model} needs MLflow ({err}): pip install 'textclf[train]', or pass "
                                 "a bundle folder") from None

            return load_predictor(model, intra_op_threads=threads)
        bundle = Path(model)
        if not bundle.is_dir():
            raise FileNotFoundError(f"model bundle {bundle} not found: run `dvc repro` to export it, or pass "
                                    "--model <bundle folder> or --model models:/<name>@<alias>")
        return OnnxPredictor(bundle, intra_op_threads=threads)
    except BundleError as exc:  # a RuntimeError; as a user error it gets the one-line treatment
        raise ValueError(str(exc)) from exc


def check_clash(path: Path, columns: Sequence[str], added: Sequence[str]) -> None:
    clash = [name for name in added if name in columns]
    if clash:
        raise ValueError(f"input {path} already has column(s) {clash}, which predict adds; rename them first")


# ---------------------------------------------------------------- readers: columns up front, then batches


@contextmanager
def reading(path: Path) -> Iterator[None]:
    # The file itself is broken (bad JSON line, ragged CSV, corrupt Parquet). pandas and pyarrow messages rarely
    # name the file; add it so the one-line error says which one.
    try:
        yield
    except (ValueError, OSError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc


class CsvReader:
    """Every column as a string with NA parsing off, so each value is written back exactly as read."""

    def __init__(self, path: Path, sep: str, chunk_size: int):
        self.path, self.sep, self.chunk_size = path, sep, chunk_size
        with reading(path):
            self.columns = list(self._read(nrows=0).columns)

    def _read(self, **kwargs: Any) -> Any:
        return pd.read_csv(self.path, sep=self.sep, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                           **kwargs)

    def batches(self) -> Iterator[pd.DataFrame]:
        with reading(self.path), self._read(chunksize=self.chunk_size) as chunks:
            yield from chunks

    @staticmethod
    def texts(batch: pd.DataFrame, column: str) -> list[Any]:
        return batch[column].tolist()


class JsonlReader:
    """Records as parsed JSON; the columns are the keys seen in the first chunk, which is read here and kept."""

    def __init__(self, path: Path, chunk_size: int):
        self.path, self.chunk_size = path, chunk_size
        self._chunks = self._read()
        self._first = next(self._chunks, [])
        self.columns = list(dict.fromkeys(key for record in self._first for key in record))

    def _read(self) -> Iterator[list[dict[str, Any]]]:
        with reading(self.path), self.path.open(encoding="utf-8-sig") as lines:
            records = (parse_record(line, number) for number, line in enumerate(lines, 1) if line.strip())
            while chunk := list(islice(records, self.chunk_size)):
                yield chunk

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        if self._first:
            yield self._first
        yield from self._chunks

    @staticmethod
    def texts(batch: list[dict[str, Any]], column: str) -> list[Any]:
        return [record.get(column) for record in batch]


def parse_record(line: str, number: int) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {number} is not valid JSON ({exc.msg}); fix or remove that line") from None
    if not isinstance(record, dict):
        raise ValueError(f"line {number} is a JSON {type(record).__name__}, not an object; "
                         "JSONL input needs one object per line")
    return record


class ParquetReader:
    def __init__(self, path: Path, chunk_size: int):
        self.path, self.chunk_size = path, chunk_size
        with reading(path):
            self.file = pq.ParquetFile(path)
        self.columns = list(self.file.schema_arrow.names)

    def batches(self) -> Iterator[pa.RecordBatch]:
        with reading(self.path):
            yield from self.file.iter_batches(batch_size=self.chunk_size)

    @staticmethod
    def texts(batch: pa.RecordBatch, column: str) -> list[Any]:
        return batch.column(column).to_pylist()


def open_reader(path: Path, fmt: str, chunk_size: int) -> CsvReader | JsonlReader | ParquetReader:
    if fmt == "parquet":
        return ParquetReader(path, chunk_size)
    if fmt == "jsonl":
        return JsonlReader(path, chunk_size)
    return CsvReader(path, "\t" if fmt == "tsv" else ",", chunk_size)


def count_rows(reader: CsvReader | JsonlReader | ParquetReader) -> int | None:
    """Rows for the progress bar: Parquet metadata, else one fast pass counting newlines (CSV fields that span
    lines make this an upper bound; the bar is corrected at the end)."""
    if isinstance(reader, ParquetReader):
        return reader.file.metadata.num_rows
    lines, last = 0, b"\n"
    with reader.path.open("rb") as raw:
        while block := raw.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"
    return max(0, lines - isinstance(reader, CsvReader))  # minus the header line


# ---------------------------------------------------------------- writers: append a label and scores per batch


class CsvWriter:
    def __init__(self, path: Path, sep: str, columns: list[str]):
        self.sep = sep
        self.handle = path.open("w", encoding="utf-8", newline="")
        # Header once, up front, so a header-only input still gives a header-only output.
        pd.DataFrame(columns=columns).to_csv(self.handle, sep=sep, index=False, lineterminator="\n")

    def write(self, batch: pd.DataFrame, added: list[str], labels: list[str], scores: np.ndarray) -> None:
        # float32 scores are written in their shortest exact form, NaN as an empty cell.
        out = batch.assign(**dict(zip(added, [labels, *scores.T], strict=True)))
        out.to_csv(self.handle, sep=self.sep, header=False, index=False, lineterminator="\n")

    def close(self) -> None:
        self.handle.close()


class JsonlWriter:
    def __init__(self, path: Path):
        self.handle = path.open("w", encoding="utf-8", newline="\n")

    def write(self, batch: list[dict[str, Any]], added: list[str], labels: list[str], scores: np.ndarray) -> None:
        # float32 → its shortest decimal form, so 0.9 is written as 0.9, not 0.8999999761581421.
        for record, label, row in zip(batch, labels, scores.astype(str).tolist(), strict=True):
            values = [None if value == "nan" else float(value) for value in row]
            out = {**record, **dict(zip(added, [label, *values], strict=True))}
            self.handle.write(json.dumps(out, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.handle.close()


class ParquetWriter:
    def __init__(self, path: Path, schema: pa.Schema, added: list[str]):
        fields = [pa.field(added[0], pa.string()), *(pa.field(name, pa.float32()) for name in added[1:])]
        self.schema = pa.schema([*schema, *fields], metadata=schema.metadata)
        self.writer = pq.ParquetWriter(path, self.schema)

    def write(self, batch: pa.RecordBatch, added: list[str], labels: list[str], scores: np.ndarray) -> None:
        arrays = [*batch.columns, pa.array(labels, pa.string())]
        arrays += [pa.array(scores[:, j], pa.float32(), from_pandas=True) for j in range(scores.shape[1])]  # NaN→null
        self.writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


def open_writer(path: Path, fmt: str, reader: Any, added: list[str]) -> CsvWriter | JsonlWriter | ParquetWriter:
    if fmt == "parquet":
        return ParquetWriter(path, reader.file.schema_arrow, added)
    if fmt == "jsonl":
        return JsonlWriter(path)
    return CsvWriter(path, reader.sep, [*reader.columns, *added])


# ---------------------------------------------------------------- scoring


@dataclass
class Tally:
    rows: int = 0
    scored: int = 0
    bad_rows: list[int] = field(default_factory=list)  # the first few, 1-based data-row numbers
    passed_through: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add(self, n: int, bad: list[int]) -> None:
        room = SHOWN_BAD_ROWS - len(self.bad_rows)
        self.bad_rows += [self.rows + i + 1 for i in bad[:max(0, room)]]
        self.rows += n
        self.passed_through += len(bad)
        self.scored += n - len(bad)

    def rate(self) -> float:
        return self.scored / max(time.perf_counter() - self.started, 1e-9)


class Progress:
    """tqdm on a terminal (stderr); elsewhere a log line every LOG_EVERY_S, so a long job in CI or DVC still
    shows it is alive without filling the log with bar redraws."""

    def __init__(self, reader: Any, enabled: bool):
        self.bar = None
        self.last = time.perf_counter()
        self.enabled = enabled
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=count_rows(reader), unit=" rows", unit_scale=True, file=sys.stderr,
                            desc=reader.path.name, dynamic_ncols=True)

    def update(self, n: int, tally: Tally) -> None:
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and time.perf_counter() - self.last >= LOG_EVERY_S:
            self.last = time.perf_counter()
            log.info("predict: %d rows so far, %.0f texts/s", tally.rows, tally.rate())

    def close(self, done: bool) -> None:
        if self.bar is not None:
            if done:  # the line count over-counts CSV fields spanning lines; end the bar at the true total
                self.bar.total = self.bar.n
                self.bar.refresh()
            self.bar.close()


def stream(predictor: Scorer, reader: Any, writer: Any, text_column: str, added: list[str],
           progress: Progress) -> Tally:
    tally = Tally()
    for batch in reader.batches():
        texts = reader.texts(batch, text_column)
        if isinstance(reader, JsonlReader):  # JSONL keys can appear in any record, not only the first chunk's
            check_clash(reader.path, {key for record in batch for key in record}, added)
        # float32 scores [n, n_labels]; a text that cannot be scored gets label "" and NaN scores
        scores, bad = score_rows(predictor, texts)
        best = np.nan_to_num(scores, nan=-1.0).argmax(axis=1)
        labels = ["" if miss else predictor.labels[k] for k, miss in zip(best.tolist(), bad.tolist(), strict=True)]
        writer.write(batch, added, labels, scores)
        tally.add(len(texts), np.flatnonzero(bad).tolist())
        progress.update(len(texts), tally)
    return tally


def predict_file(predictor: Scorer, input: str | Path, output: str | Path, text_column: str = "text",
                 chunk_size: int = 10_000, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Score INPUT into OUTPUT (same format) atomically; return the counts. See the module docstring."""
    if chunk_size < 1:
        raise ValueError(f"--chunk-size must be at least 1, got {chunk_size}")
    fmt = check_paths(input, output, overwrite)
    src, dst = Path(input), Path(output)
    added = ["label", *score_columns(predictor.labels)]
    reader = open_reader(src, fmt, chunk_size)
    # An empty JSONL file has no columns to check and gives an empty output.
    if text_column not in reader.columns and (reader.columns or fmt != "jsonl"):
        raise ValueError(f"input {src} has no column '{text_column}'; its columns are {reader.columns}; "
                         "pass --text-column NAME")
    check_clash(src, reader.columns, added)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.partial-{os.getpid()}")
    bar = Progress(reader, progress)
    done = False
    try:
        writer = open_writer(tmp, fmt, reader, added)
        try:
            tally = stream(predictor, reader, writer, text_column, added, bar)
        finally:
            writer.close()
        os.replace(tmp, dst)
        done = True
    finally:
        bar.close(done)
        if not done:
            tmp.unlink(missing_ok=True)
    return report(tally, dst)


def report(tally: Tally, output: Path) -> dict[str, Any]:
    counts = {"rows": tally.rows, "scored": tally.scored, "passed_through": tally.passed_through,
              "bad_rows": tally.bad_rows, "seconds": round(time.perf_counter() - tally.started, 3),
              "texts_per_s": round(tally.rate(), 1), "output": str(output)}
    errors = "no errors"
    if tally.passed_through:
        shown = ", ".join(map(str, tally.bad_rows)) + (", ..." if tally.passed_through > len(tally.bad_rows) else "")
        log.warning("predict: %d rows had no text to score (missing or not a string) and were passed through with "
                    "an empty label and empty scores: data rows %s", tally.passed_through, shown)
        errors = f"errors: {tally.passed_through} missing or non-string texts (rows {shown})"
    log.info("predict: %d rows scored, %d passed through (%s), %.0f texts/s → %s", tally.scored,
             tally.passed_through, errors, tally.rate(), output)
    return counts


# ---------------------------------------------------------------- CLI


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m pipelines.predict",
                                description="Score a CSV, TSV, JSONL or Parquet file of any size with the bundle.")
    p.add_argument("input", help="file to score: .csv, .tsv, .jsonl/.ndjson or .parquet")
    p.add_argument("output", help="where to write it, in the same format as the input")
    p.add_argument("--text-column", default="text", help="column holding the texts (default: text)")
    p.add_argument("--model", default="artifacts/bundle",
                   help="bundle folder, or an MLflow URI like models:/textclf@champion (default: artifacts/bundle)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--chunk-size", type=int, default=10_000, help="rows read, scored and written at a time")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (default 0: one per core)")
    args = p.parse_args()
    check_paths(args.input, args.output, args.overwrite)  # before the model loads: fail in milliseconds
    predictor = load_model(args.model, args.threads)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM takes Ctrl-C's path: the partial file goes
    try:
        predict_file(predictor, args.input, args.output, args.text_column, args.chunk_size, args.overwrite,
                     progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"interrupted: {args.output} not written", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    run(main)

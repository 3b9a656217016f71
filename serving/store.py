"""The production store: every logged prediction and every feedback label, in SQLite (default) or PostgreSQL.

One module behind both the service (which writes) and `pipelines.feedback` / `pipelines.monitor` (which
read). Plain DB-API (sqlite3 from the standard library, psycopg2 for PostgreSQL) keeps the serving image
light. Times are UTC epoch seconds (a float) in both databases, so window queries need no dialect.

Feedback is committed before the caller answers: SQLite runs in WAL mode with `synchronous=FULL`, so a
committed row survives a SIGKILL (and a power cut); several worker processes share the file safely.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

DEFAULT_URL = "sqlite:///feedback.db"  # at the repo root, beside mlflow.db

FEEDBACK_COLUMNS = ("id", "text", "text_sha256", "label", "predicted", "model_version", "created", "updated")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS predictions (
        id TEXT PRIMARY KEY, created DOUBLE PRECISION NOT NULL, text TEXT, text_sha256 TEXT NOT NULL,
        label TEXT NOT NULL, score DOUBLE PRECISION NOT NULL, scores TEXT NOT NULL, model_name TEXT NOT NULL,
        model_version TEXT NOT NULL, n_chars INTEGER NOT NULL, n_tokens INTEGER NOT NULL, n_unk INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS predictions_created ON predictions (created)",
    # Covers what the monitor aggregates (Store.window_counts), so a day of a busy service is counted from this
    # narrow index, not from the table rows with their texts: 71 s → 26 s at 5M rows (bench/RESULTS.md).
    "CREATE INDEX IF NOT EXISTS predictions_window ON predictions "
    "(created, label, score, n_chars, n_tokens, n_unk, model_name, model_version)",
    # How often a text was seen (the review queue's count) without scanning the window.
    "CREATE INDEX IF NOT EXISTS predictions_text ON predictions (text_sha256, created)",
    """CREATE TABLE IF NOT EXISTS feedback (
        id TEXT PRIMARY KEY, text TEXT, text_sha256 TEXT NOT NULL, label TEXT NOT NULL, predicted TEXT NOT NULL,
        model_version TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL)""",
)


SCORE_BUCKETS = 1000  # the confidence distribution is read in steps of 0.001: a figure moves by at most half a step


@dataclass(frozen=True)
class WindowCounts:
    """A window's aggregates (Store.window_counts)."""

    rows: int
    texts: int  # rows logged with their text (not as a hash)
    tokens: int
    unk: int
    labels: list[tuple[str, str, str, int]]  # (model name, model version, predicted label, rows)
    scores: dict[int, int]  # floor(score * SCORE_BUCKETS) → rows
    lengths: dict[int, int]  # characters per text → rows


class StoreError(RuntimeError):
    """The store URL is malformed, or the database can't be reached or written."""


@dataclass(frozen=True)
class Prediction:
    """One logged prediction, as the service saw it."""

    id: str
    created: float
    text: str | None
    text_sha256: str
    label: str
    score: float
    scores: dict[str, float]
    model_name: str
    model_version: str
    n_chars: int
    n_tokens: int
    n_unk: int

    def row(self) -> tuple[Any, ...]:
        """The values in PREDICTION_COLUMNS' order, `scores` as JSON."""
        return tuple(json.dumps(v, ensure_ascii=False) if k == "scores" else v for k, v in vars(self).items())

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Prediction:
        values = dict(zip(PREDICTION_COLUMNS, row, strict=True))
        values["scores"] = json.loads(values["scores"])
        return cls(**values)


PREDICTION_COLUMNS = tuple(field.name for field in fields(Prediction))  # the table's columns, in this order


def _sqlite_path(url: str) -> Path:
    path = url.removeprefix("sqlite:///")
    if not path or path == url:
        raise StoreError(f"{url!r}: a SQLite store URL looks like sqlite:///feedback.db (relative) or "
                         "sqlite:////abs/path/feedback.db")
    return Path(path)


class Store:
    """A connection to the production store; thread-safe (one lock around one connection)."""

    def __init__(self, url: str = DEFAULT_URL, timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.dialect = "sqlite" if url.startswith("sqlite:") else "postgresql"
        if self.dialect == "postgresql" and not url.startswith(("postgresql://", "postgres://")):
            raise StoreError(f"{url!r}: use sqlite:///PATH or postgresql://user:password@host:port/db")
        self._lock = threading.Lock()
        self._conn: Any = None
        with self._cursor() as cur:
            for statement in SCHEMA:
                cur.execute(statement)

    # -- connection ---------------------------------------------------------------------------------
    def _connect(self) -> Any:
        try:
            if self.dialect == "sqlite":
                path = _sqlite_path(self.url)
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(path), timeout=self.timeout_s, check_same_thread=False,
                                       isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writers of other workers
                conn.execute("PRAGMA synchronous=FULL")  # a committed feedback row survives a crash
                return conn
            import psycopg2  # only for PostgreSQL stores

            conn = psycopg2.connect(self.url, connect_timeout=max(1, int(self.timeout_s)))
            conn.autocommit = True
            return conn
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot open the store {self.redacted_url}: {exc}") from exc

    @property
    def redacted_url(self) -> str:
        """The URL without a password, for logs and errors."""
        if "@" not in self.url:
            return self.url
        scheme, rest = self.url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor inside one transaction; on a broken connection the next call reconnects."""
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN")
                yield cur
                cur.execute("COMMIT")
            except Exception as exc:
                try:
                    cur.execute("ROLLBACK")
                except Exception:  # the connection itself is gone: drop it, reconnect next time
                    self._drop_connection()
                if isinstance(exc, StoreError):
                    raise
                raise StoreError(f"store {self.redacted_url}: {exc}") from exc
            finally:
                with suppress(Exception):
                    cur.close()

    def _drop_connection(self) -> None:
        with suppress(Exception):
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._drop_connection()

    def _sql(self, statement: str) -> str:
        return statement if self.dialect == "sqlite" else statement.replace("?", "%s")

    # -- predictions --------------------------------------------------------------------------------
    def add_predictions(self, predictions: Iterable[Prediction]) -> int:
        rows = [p.row() for p in predictions]
        if rows:
            marks = ", ".join("?" * len(PREDICTION_COLUMNS))
            statement = self._sql(f"INSERT INTO predictions ({', '.join(PREDICTION_COLUMNS)}) VALUES ({marks}) "
                                  "ON CONFLICT (id) DO NOTHING")
            with self._cursor() as cur:
                cur.executemany(statement, rows)
        return len(rows)

    def prediction(self, prediction_id: str) -> Prediction | None:
        with self._cursor() as cur:
            cur.execute(self._sql(f"SELECT {', '.join(PREDICTION_COLUMNS)} FROM predictions WHERE id = ?"),
                        (prediction_id,))
            row = cur.fetchone()
        return Prediction.from_row(row) if row else None

    def least_confident(self, since: float, until: float, page: int = 1000) -> Iterator[Prediction]:
        """The window's predictions, least confident first, a page at a time (keyset paging: each page is one
        bounded top-N query), so a reader that stops early never sorts or holds the whole window."""
        statement = self._sql(f"SELECT {', '.join(PREDICTION_COLUMNS)} FROM predictions WHERE created >= ? AND "
                              "created < ? AND (score, created, id) > (?, ?, ?) "
                              f"ORDER BY score, created, id LIMIT {int(page)}")
        after: tuple[float, float, str] = (-1.0, 0.0, "")
        while True:
            with self._cursor() as cur:
                cur.execute(statement, (since, until, *after))
                rows = [Prediction.from_row(row) for row in cur.fetchall()]
            yield from rows
            if len(rows) < page:
                return
            after = (rows[-1].score, rows[-1].created, rows[-1].id)

    def text_counts(self, since: float, until: float, hashes: Iterable[str], batch: int = 500) -> dict[str, int]:
        """How many of the window's predictions have each text (by its sha256): index lookups, a batch at a time."""
        hashes, counts = sorted(set(hashes)), {}
        for start in range(0, len(hashes), batch):
            part = hashes[start:start + batch]
            statement = self._sql("SELECT text_sha256, COUNT(*) FROM predictions WHERE text_sha256 IN "
                                  f"({', '.join('?' * len(part))}) AND created >= ? AND created < ? GROUP BY 1")
            with self._cursor() as cur:
                cur.execute(statement, (*part, since, until))
                counts.update({str(h): int(n) for h, n in cur.fetchall()})
        return counts

    def window_counts(self, since: float, until: float) -> WindowCounts:
        """What the monitor's checks need of a window, aggregated by the database: one scan a query, and a
        result whose size does not grow with the window."""
        where = "FROM predictions WHERE created >= ? AND created < ?"
        bucket = f"CAST(score * {SCORE_BUCKETS} AS INTEGER)" if self.dialect == "sqlite" else \
            f"CAST(FLOOR(score * {SCORE_BUCKETS}) AS INTEGER)"
        queries = {
            "totals": f"SELECT COUNT(*), SUM(CASE WHEN text <> '' THEN 1 ELSE 0 END), SUM(n_tokens), SUM(n_unk) "
                      f"{where}",
            "labels": f"SELECT model_name, model_version, label, COUNT(*) {where} GROUP BY model_name, model_version, "
                      "label",
            "scores": f"SELECT {bucket}, COUNT(*) {where} GROUP BY 1",
            "lengths": f"SELECT n_chars, COUNT(*) {where} GROUP BY n_chars"}
        found = {}
        with self._cursor() as cur:
            for name, query in queries.items():
                cur.execute(self._sql(query), (since, until))
                found[name] = cur.fetchall()
        rows, texts, tokens, unk = (int(x or 0) for x in found["totals"][0])
        return WindowCounts(rows, texts, tokens, unk, [(str(m), str(v), str(lab), int(n)) for m, v, lab, n in
                                                       found["labels"]],
                            {int(b): int(n) for b, n in found["scores"]}, {int(c): int(n) for c, n in found["lengths"]})

    def sample_texts(self, since: float, until: float, n: int, seed: int = 0) -> list[str]:
        """Up to n of the window's logged texts, the same ones for the same seed and window: ordered by a hash of
        seed and id, a bounded top-N query rather than a shuffle of the window."""
        key = "textclf_sample_key(id)" if self.dialect == "sqlite" else "md5(? || id)"
        statement = self._sql(f"SELECT text FROM predictions WHERE created >= ? AND created < ? AND text <> '' "
                              f"ORDER BY {key} LIMIT {int(n)}")
        with self._cursor() as cur:
            if self.dialect == "sqlite":
                self._conn.create_function("textclf_sample_key", 1, lambda pid: zlib.crc32(f"{seed}:{pid}".encode()),
                                           deterministic=True)
                cur.execute(statement, (since, until))
            else:
                cur.execute(statement, (since, until, f"{seed}:"))
            return [row[0] for row in cur.fetchall()]

    def prune(self, before: float, batch: int = 50_000) -> int:
        """Delete predictions logged before `before` (epoch seconds), never one that has feedback; returns how
        many went. In batches, so a big delete neither holds the writers' lock long nor swells SQLite's WAL."""
        statement = self._sql(
            "DELETE FROM predictions WHERE id IN (SELECT p.id FROM predictions p WHERE p.created < ? AND NOT EXISTS "
            f"(SELECT 1 FROM feedback f WHERE f.id = p.id) LIMIT {int(batch)})")
        total = 0
        while True:
            with self._cursor() as cur:
                cur.execute(statement, (before,))
                removed = cur.rowcount
            total += removed
            if removed < batch:
                return total

    # -- feedback -----------------------------------------------------------------------------------
    def add_feedback(self, prediction: Prediction, label: str) -> None:
        """Store (or replace: the latest label wins) the true label of a logged prediction; committed on return."""
        self.add_feedbacks([(prediction, label)])

    def add_feedbacks(self, labelled: Sequence[tuple[Prediction, str]]) -> None:
        """add_feedback for many predictions in one transaction: all are stored, or none."""
        now = time.time()
        statement = self._sql(
            f"INSERT INTO feedback ({', '.join(FEEDBACK_COLUMNS)}) VALUES ({', '.join('?' * len(FEEDBACK_COLUMNS))}) "
            "ON CONFLICT (id) DO UPDATE SET label = excluded.label, updated = excluded.updated")
        with self._cursor() as cur:
            cur.executemany(statement, [(p.id, p.text, p.text_sha256, label, p.label, p.model_version, now, now)
                                        for p, label in labelled])

    def feedback(self) -> list[dict[str, Any]]:
        """Every feedback row, oldest first."""
        with self._cursor() as cur:
            cur.execute(f"SELECT {', '.join(FEEDBACK_COLUMNS)} FROM feedback ORDER BY created, id")
            rows = cur.fetchall()
        return [dict(zip(FEEDBACK_COLUMNS, row, strict=True)) for row in rows]

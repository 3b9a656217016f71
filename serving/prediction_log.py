"""Log every prediction without slowing or failing a request.

The request path only appends one tuple per batch to a bounded queue; a daemon thread per worker turns the
batches into rows and writes them to the store in one transaction every `flush_interval_s`. A store that
can't be written (full disk, unwritable folder, database down) costs a warning (at most one a minute) and a
counter of dropped rows, never an error to the client; so does a queue that fills faster than it drains.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from serving.store import Prediction, Store, StoreError

logger = logging.getLogger("textclf.prediction_log")
WARN_EVERY_S = 60.0
# (time, ids, texts, answers, token ids): one scored batch as the service hands it over
Batch = tuple[float, tuple[str, str], list[str], list[str], list[dict[str, Any]], list[list[int]]]


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def token_stats(text: str, token_ids: list[int], unk_id: int) -> tuple[int, int]:
    """(tokens, [UNK] tokens) of one text as the model read it; an empty text reads as one [UNK] but counts 0."""
    return (len(token_ids), token_ids.count(unk_id)) if text else (0, 0)


class PredictionLogger:
    """Queue + writer thread in front of `Store.add_predictions`."""

    def __init__(
        self,
        store_factory: Callable[[], Store],
        unk_id: int = 1,
        log_texts: bool = True,
        flush_interval_s: float = 0.2,
        max_queued_batches: int = 10_000,
        on_dropped: Callable[[int, str], None] | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        self.store_factory = store_factory
        self.unk_id = unk_id
        self.log_texts = log_texts
        self.flush_interval_s = flush_interval_s
        self.on_dropped = on_dropped or (lambda n, why: None)
        self.on_written = on_written or (lambda n: None)
        self._queue: queue.Queue[Batch] = queue.Queue(max_queued_batches)
        self._store: Store | None = None
        self._flushed = threading.Condition()
        self._pending = 0  # batches taken off the queue but not yet written
        self._last_warning = 0.0
        self._thread = threading.Thread(target=self._run, name="textclf-prediction-log", daemon=True)
        self._thread.start()

    def submit(self, model: tuple[str, str], ids: list[str], texts: list[str], results: list[dict[str, Any]],
               token_ids: list[list[int]]) -> None:
        """Hand one batch over, scored by `model` (name, version), with the token ids the model read; never
        blocks, never raises."""
        try:
            self._queue.put_nowait((time.time(), model, ids, texts, results, token_ids))
        except queue.Full:
            self._drop(len(ids), "queue full")

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything submitted so far is written (or dropped); True if it was in time."""
        with self._flushed:  # the writer notifies after each transaction
            return self._flushed.wait_for(lambda: not self._queue.unfinished_tasks, timeout_s)

    # -- writer thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            batches = [self._queue.get()]
            time.sleep(self.flush_interval_s)  # gather what arrives meanwhile into the same transaction
            # This thread is the queue's only consumer: every batch qsize() counts is there to take.
            batches += [self._queue.get_nowait() for _ in range(self._queue.qsize())]
            try:
                self._write(batches)
            except Exception as exc:
                self._drop(sum(len(b[2]) for b in batches), str(exc))
            finally:
                for _ in batches:
                    self._queue.task_done()
                with self._flushed:
                    self._flushed.notify_all()

    def _write(self, batches: list[Batch]) -> None:
        rows = []
        for created, (model_name, model_version), ids, texts, results, encoded in batches:
            for pid, text, token_ids, result in zip(ids, texts, encoded, results, strict=True):
                n_tokens, n_unk = token_stats(text, token_ids, self.unk_id)
                rows.append(Prediction(
                    id=pid, created=created, text=text if self.log_texts else None, text_sha256=text_sha256(text),
                    label=result["label"], score=float(result["score"]), scores=result["scores"],
                    model_name=model_name, model_version=model_version, n_chars=len(text),
                    n_tokens=n_tokens, n_unk=n_unk,
                ))
        if self._store is None:
            self._store = self.store_factory()
        try:
            self.on_written(self._store.add_predictions(rows))
        except StoreError:
            self._store.close()  # reopen next time: the folder may have been fixed meanwhile
            raise

    def _drop(self, n: int, why: str) -> None:
        self.on_dropped(n, why)
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_S:
            self._last_warning = now
            logger.warning("textclf: %d prediction(s) not logged (%s); serving goes on. "
                           "Fix the store or set TEXTCLF_LOG_PREDICTIONS=false", n, why)

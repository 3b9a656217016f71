"""The service's side of the production loop: log each prediction, take feedback on it.

One `FeedbackDesk` per worker. Predictions go through `serving.prediction_log` (never blocking a request);
feedback is validated here and committed to `serving.store` before POST /feedback answers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from serving.config import ServingConfig
from serving.contract import UNK_ID
from serving.errors import ApiError, error_response, invalid
from serving.metrics import metrics
from serving.prediction_log import PredictionLogger
from serving.schemas import FeedbackRequest
from serving.store import Prediction, Store, StoreError

logger = logging.getLogger("textclf.serving")
MAX_ID_CHARS = 64


class FeedbackDesk:
    def __init__(self, config: ServingConfig) -> None:
        self.config = config
        self._store: Store | None = None
        self._opening = threading.Lock()  # the writer thread and request threads may ask at once
        self.prediction_log: PredictionLogger | None = None
        if config.log_predictions:
            self.prediction_log = PredictionLogger(
                self.store, UNK_ID, log_texts=config.log_texts, flush_interval_s=config.log_flush_interval_s,
                on_dropped=lambda n, why: metrics().logged.labels(outcome="dropped").inc(n),
                on_written=lambda n: metrics().logged.labels(outcome="written").inc(n),
            )

    def store(self) -> Store:
        """The store, opened on first use (an unreachable store must not keep the service from starting)."""
        with self._opening:
            if self._store is None:
                self._store = Store(self.config.feedback_url)
            return self._store

    def close(self) -> None:
        if self.prediction_log is not None:
            self.prediction_log.flush(timeout_s=10)

    def log(self, model: tuple[str, str], ids: list[str], texts: list[str], results: list[dict[str, Any]],
            token_ids: list[list[int]]) -> None:
        if self.prediction_log is not None:
            self.prediction_log.submit(model, ids, texts, results, token_ids)

    async def receive(self, body: bytes, labels: tuple[str, ...]) -> Response:
        """The answer to one POST /feedback body; `labels` are the served model's."""
        try:
            request = parse(body, labels)
            receipt = await asyncio.to_thread(self._store_feedback, request.id, request.label)
        except ApiError as exc:
            metrics().feedback.labels(status=str(exc.status)).inc()
            return error_response(exc.status, exc.error, **exc.extra)
        metrics().feedback.labels(status="200").inc()
        return JSONResponse(receipt)

    def _store_feedback(self, prediction_id: str, label: str) -> dict[str, Any]:
        try:
            prediction = self._find(prediction_id)
            if prediction is None:
                why = ("prediction logging is off (TEXTCLF_LOG_PREDICTIONS=false), so no id can be matched"
                       if self.prediction_log is None else "send an id returned by POST /classify")
                raise ApiError(404, f"id: no logged prediction has the id {prediction_id!r}; {why}")
            self.store().add_feedback(prediction, label)
        except StoreError as exc:
            logger.warning("textclf: feedback not stored: %s", exc)
            raise ApiError(503, f"the feedback store is unavailable, nothing was stored; try again ({exc})") from None
        return {"id": prediction.id, "label": label, "predicted": prediction.label,
                "model_version": prediction.model_version}

    def _find(self, prediction_id: str) -> Prediction | None:
        """The logged prediction; one just answered may still be on its way to the store, so wait a moment."""
        store = self.store()
        found = store.prediction(prediction_id)
        if found is not None or self.prediction_log is None:
            return found
        self.prediction_log.flush()  # this worker's own queue
        # Another worker may hold it: its writer commits within one flush interval.
        deadline = time.monotonic() + 2 * self.config.log_flush_interval_s + 0.5
        while found is None and time.monotonic() < deadline:
            found = store.prediction(prediction_id)
            if found is None:
                time.sleep(0.05)
        return found


SEND = 'send {"id": "...", "label": "..."}'


def parse(body: bytes, labels: tuple[str, ...]) -> FeedbackRequest:
    """The request, by the `FeedbackRequest` schema and the served model's labels; else an `ApiError` naming the
    field (400 when the body is no JSON object at all, 422 for its fields)."""
    try:
        request = FeedbackRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        raise ApiError(422 if errors[0]["loc"] else 400, **invalid(errors, _explain)) from None
    if request.label not in labels:
        raise ApiError(422, f"label: {request.label!r} is not a label of the model; use one of: {', '.join(labels)}",
                       labels=list(labels))
    if len(request.id) > MAX_ID_CHARS:
        raise ApiError(404, f"id: no prediction has the id {request.id[:MAX_ID_CHARS]!r}...")
    return request


def _explain(error: Mapping[str, Any]) -> str:
    """How to fix each kind of mistake; the schema asks for nothing but two non-empty strings."""
    return {"json_invalid": f"not valid JSON ({error.get('ctx', {}).get('error')}); {SEND}",
            "model_type": f"must be a JSON object with 'id' and 'label', got {type(error['input']).__name__}",
            "missing": f"missing; {SEND}", "extra_forbidden": "unexpected field; send only 'id' and 'label'",
            }.get(error["type"], "must be a non-empty string")

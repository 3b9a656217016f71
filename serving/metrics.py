"""Prometheus metrics for the service, leaner than BentoML's built-in request metrics.

BentoML's metrics middleware updates four multiprocess metrics with five labels each on every request; py-spy
put it at about a fifth of the per-request CPU. With it disabled (`metrics.enabled: false` in the service
config) this module records what operations need: /classify latency by status, texts per predicted label and
the adaptive batch sizes, in Prometheus' multiprocess mode (BentoML sets PROMETHEUS_MULTIPROC_DIR for its
workers, so /metrics aggregates all of them).
"""

from __future__ import annotations

import functools
import time
from typing import Any

from starlette.responses import Response

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Created lazily in each worker: prometheus_client must see the multiprocess directory first."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.request_duration = Histogram("textclf_request_duration_seconds", "POST /classify latency, from request "
                                          "to last response byte", ["status"], buckets=LATENCY_BUCKETS)
        self.predictions = Counter("textclf_predictions", "texts classified, by predicted label and the model "
                                   "version that answered", ["label", "version"])
        self.reloads = Counter("textclf_model_reloads", "new releases a worker switched to (swapped) or kept "
                               "out (refused: failed to load, failed its warm-up, or had other labels)", ["outcome"])
        self.batch_texts = Histogram("textclf_batch_texts", "texts per adaptive batch scored by the model",
                                     buckets=BATCH_BUCKETS)
        self.logged = Counter("textclf_prediction_log_rows", "predictions logged to the store, by outcome "
                              "(written, or dropped because the store failed or the queue was full)", ["outcome"])
        self.feedback = Counter("textclf_feedback_requests", "POST /feedback answers, by status", ["status"])
        # Label children bound once: labels() per request is a large share of the cost.
        self._duration = functools.cache(lambda status: self.request_duration.labels(status=str(status)))
        self._predicted = functools.cache(lambda label, version: self.predictions.labels(label=label, version=version))

    def observe_request(self, status: int, seconds: float) -> None:
        self._duration(status).observe(seconds)

    def count_labels(self, counts: dict[str, int], version: str) -> None:
        for label, n in counts.items():
            self._predicted(label, version).inc(n)


@functools.cache
def metrics() -> Metrics:
    """This worker's metrics, made on first use."""
    return Metrics()


def render_metrics() -> Response:
    """The Prometheus text page, aggregated over all worker processes."""
    import os

    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:  # in-process use (tests of this module): the default registry
        from prometheus_client import REGISTRY as registry
    metrics()  # make sure the families exist even before the first request
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class RequestTimer:
    """ASGI middleware: times requests to `path` into textclf_request_duration_seconds."""

    def __init__(self, app: Any, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def timed_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            metrics().observe_request(status, time.perf_counter() - start)

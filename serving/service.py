"""The BentoML service: `bentoml serve serving.service:Classifier`.

POST /classify goes straight to one batchable API: BentoML's adaptive batcher concatenates the `texts` of
concurrent requests, the predictor scores them in one pass, and each request gets its own slice back in order.
Built-in /livez, /healthz, /readyz (gated on `__is_ready__`); GET /metrics and GET /model are FastAPI routes
so they appear in the same OpenAPI document (/docs.json).
"""

from __future__ import annotations

import logging
import os
import uuid
from functools import partial
from pathlib import Path

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")  # before bentoml is imported: no usage tracking

import bentoml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from serving.config import load_config
from serving.feedback import FeedbackDesk
from serving.guard import RequestGuard
from serving.logs import quiet_client_errors
from serving.metrics import RequestTimer, metrics, render_metrics
from serving.responses import Answer, PredictionsOutput
from serving.rollout import Follower
from serving.schemas import ErrorMessage, FeedbackReceipt, FeedbackRequest, ModelCard, Prediction, texts_type

logger = logging.getLogger("textclf.serving")
logger.setLevel(logging.INFO)  # BentoML sets the root logger to WARNING; the load/ready lines are INFO
CONFIG = load_config()
Texts = texts_type(CONFIG.max_texts, CONFIG.max_chars)

info_app = FastAPI(title="textclf model info")
quiet_client_errors()


@bentoml.asgi_app(info_app, path="/")
@bentoml.service(
    name="textclf",
    workers=CONFIG.workers,
    traffic={"timeout": CONFIG.timeout_s},
    # Access logging costs about a third of the per-request time at these speeds; Prometheus covers traffic.
    logging={"access": {"enabled": False}},
    # BentoML's own request metrics cost about a fifth of it; serving/metrics.py records a lean set instead.
    metrics={"enabled": False},
    # /metrics, the health probes and /docs.json are excluded from tracing spans; /classify too (no exporter).
    tracing={"excluded_urls": ["/classify", "/metrics", "/livez", "/healthz", "/readyz", "/model"]},
)
class Classifier:
    """Text classification over the exported ONNX bundle."""

    def __init__(self) -> None:
        # BentoML re-binds an API method (inspect.signature + functools.wraps) on every attribute access, twice
        # per request; about 8% of the request CPU per py-spy. The binding never changes, so bind it once: an
        # instance attribute shadows the (non-data) descriptor.
        self.classify = type(self).classify.__get__(self, type(self))
        self.desk = FeedbackDesk(CONFIG)
        follow = partial(Follower, interval_s=CONFIG.reload_interval_s, threads=CONFIG.onnx_threads,
                         on_reload=lambda outcome: metrics().count_reload(outcome))
        self.follower = follow(CONFIG.bundle)
        try:
            if CONFIG.bento_model:  # the package stage saved the bundle into the BentoML model store
                self.follower = follow(Path(bentoml.models.get(CONFIG.bento_model).path))
            self.follower.start()  # readiness means a real prediction has passed (the warm-up)
        except Exception as exc:  # stay alive but not ready, with one line naming the bundle
            logger.error("textclf: %s is unusable, the service will not become ready%s: %s",
                         CONFIG.bento_model or self.follower.source,
                         " until a good release is published there"
                         if self.follower.following and not CONFIG.bento_model else "", exc)
            return
        served = self.follower.current
        logger.info("textclf: serving %s v%s from %s on %s%s", served.predictor.info.model_name, served.version,
                    self.follower.source, served.predictor.providers[0],
                    f", following it every {CONFIG.reload_interval_s:g} s" if self.follower.following else "")

    def __is_ready__(self) -> bool:
        return self.follower.current is not None

    @bentoml.on_shutdown
    def flush_prediction_log(self) -> None:
        """A graceful stop (SIGTERM, a rolling restart) writes the predictions still queued."""
        self.desk.close()

    @bentoml.api(
        route="/classify",
        batchable=True,
        max_batch_size=CONFIG.max_batch_size,
        max_latency_ms=CONFIG.max_latency_ms,
        output_spec=PredictionsOutput,
    )
    def classify(self, texts: Texts) -> list[Prediction]:  # type: ignore[valid-type]
        """Classify texts: one {id, label, score, scores} per text, in input order."""
        # Sync on purpose: BentoML runs it in a worker thread and onnxruntime releases the GIL, so the event
        # loop keeps parsing the next requests while a batch is scored.
        served = self.follower.current  # read once: this version answers the whole batch, whatever swaps meanwhile
        if served is None:
            raise bentoml.exceptions.ServiceUnavailable("model not loaded; see the server log")
        scored, token_ids = served.predictor.predict_with_ids(texts)
        version = served.version
        ids = [uuid.uuid4().hex for _ in scored]
        # The id leads each answer; the logged copy shares the dicts (nothing mutates them afterwards).
        results = [Answer(id=pid, **result) for pid, result in zip(ids, scored, strict=True)]
        for answer in results:
            answer.version = version
        self.desk.log((served.predictor.info.model_name, version), ids, texts, scored, token_ids)
        counts: dict[str, int] = {}
        for result in scored:
            counts[result["label"]] = counts.get(result["label"], 0) + 1
        stats = metrics()
        stats.count_labels(counts, version)
        stats.batch_texts.observe(len(texts))
        return results

    @info_app.post(
        "/feedback",
        response_model=FeedbackReceipt,
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": FeedbackRequest.model_json_schema()}}}},
        responses={400: {"model": ErrorMessage}, 404: {"model": ErrorMessage}, 422: {"model": ErrorMessage},
                   503: {"model": ErrorMessage}},
    )
    async def feedback(self, request: Request):
        """Record the true label of a prediction (its `id` from POST /classify); the latest label for an id wins."""
        served = self.follower.current
        if served is None:
            return JSONResponse({"error": "model not loaded; see the server log"}, status_code=503)
        status, payload = await self.desk.receive(await request.body(), served.predictor.labels)
        return JSONResponse(payload, status_code=status)

    @info_app.get("/metrics", response_class=Response, tags=["Infrastructure"])
    def prometheus(self):
        """Prometheus metrics: /classify latency, predictions per label, adaptive batch sizes."""
        return render_metrics()

    @info_app.get("/model", response_model=ModelCard, responses={503: {"model": ErrorMessage}})
    def model_card(self):
        """Model name, version, labels, evaluation metrics, request limits, and what the worker follows."""
        served = self.follower.current
        if served is None:
            return JSONResponse({"error": "model not loaded; see the server log",
                                 "rollout": self.follower.describe()}, status_code=503)
        info = served.predictor.info
        return ModelCard(
            model_name=info.model_name,
            version=served.version,
            labels=list(info.labels),
            max_len=info.max_len,
            metrics=info.metrics,
            calibration=info.calibration,
            data_hash=info.data_hash,
            git_commit=info.git_commit,
            created=info.created,
            providers=list(served.predictor.providers),
            limits={
                "max_texts": CONFIG.max_texts,
                "max_chars": CONFIG.max_chars,
                "max_body_bytes": CONFIG.max_body_bytes,
            },
            rollout=self.follower.describe(),
        )


Classifier.add_asgi_middleware(RequestTimer, path="/classify")  # outermost of ours: times 4xx answers too
Classifier.add_asgi_middleware(
    RequestGuard, path="/classify", max_body_bytes=CONFIG.max_body_bytes, api_token=CONFIG.api_token
)
Classifier.add_asgi_middleware(  # the same token, type and size checks; its own 4xx bodies already name the field
    RequestGuard, path="/feedback", max_body_bytes=CONFIG.max_body_bytes, api_token=CONFIG.api_token,
    rewrite_errors=False,
)

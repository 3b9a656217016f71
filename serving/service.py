"""The BentoML service: `bentoml serve serving.service:Classifier`.

POST /classify goes straight to one batchable API: BentoML's adaptive batcher concatenates the `texts` of
concurrent requests, the predictor scores them in one pass, and each request gets its own slice back in order.
Built-in /livez, /healthz, /readyz (gated on `__is_ready__`); GET /metrics, GET /model and POST /feedback are
FastAPI routes so they appear in the same OpenAPI document (/docs.json), which lists every status each route
answers; every error body is serving/errors.py's `ErrorMessage`.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")  # before bentoml is imported: no usage tracking

import bentoml
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, create_model

from serving.config import ServingConfig, load_config
from serving.contract import BundleError, read_meta
from serving.errors import NOT_LOADED, documented, error_response
from serving.feedback import FeedbackDesk
from serving.guard import ErrorBodies, RequestGuard
from serving.logs import quiet_client_errors
from serving.metrics import RequestTimer, metrics, render_metrics
from serving.releases import ReleaseError, is_channel, read_release
from serving.responses import VERSION_HEADER, Answer, PredictionsOutput
from serving.rollout import Follower
from serving.schemas import FeedbackReceipt, FeedbackRequest, ModelCard, Prediction, texts_type, with_labels

logger = logging.getLogger("textclf.serving")
logger.setLevel(logging.INFO)  # BentoML sets the root logger to WARNING; the load/ready lines are INFO
CONFIG = load_config()
Texts = texts_type(CONFIG.max_texts, CONFIG.max_chars)


def labels_at_start(config: ServingConfig) -> tuple[str, ...] | None:
    """The labels this worker will serve, for the document's `label` enums: what the channel's pointer promises,
    or the bundle's meta.json. None (the document then says any string) when nothing is published yet or it is
    unreadable; the worker says why when it tries to load, and POST /feedback checks the served labels anyway."""
    try:
        source = Path(bentoml.models.get(config.bento_model).path) if config.bento_model else config.bundle
        return read_release(source).labels if is_channel(source) else read_meta(source).labels
    except (ReleaseError, BundleError, bentoml.exceptions.BentoMLException):
        return None


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """FastAPI `openapi_extra` declaring a required JSON body of `model`, for a route that reads the body itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


LABELS = labels_at_start(CONFIG)
AUTH = (401,) if CONFIG.api_token else ()  # the guard answers 401 only when a token is set
PLAIN_TEXT = {"description": "Successful Response", "content": {"text/plain": {"schema": {"type": "string"}}}}

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
                         on_reload=lambda outcome: metrics().reloads.labels(outcome=outcome).inc())
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
        metrics().count_labels(Counter(result["label"] for result in scored), version)
        metrics().batch_texts.observe(len(texts))
        return results

    @info_app.post("/feedback", response_model=with_labels(FeedbackReceipt, LABELS),
                   openapi_extra=json_body(with_labels(FeedbackRequest, LABELS)),
                   responses=documented(400, *AUTH, 404, 413, 415, 422, 503))
    async def feedback(self, request: Request) -> Response:
        """Record the true label of a prediction (its `id` from POST /classify); the latest label for an id wins."""
        served = self.follower.current
        if served is None:
            return error_response(503, NOT_LOADED)
        return await self.desk.receive(await request.body(), served.predictor.labels)

    @info_app.get("/metrics", response_class=Response, tags=["Infrastructure"], responses={200: PLAIN_TEXT})
    def prometheus(self):
        """Prometheus metrics: /classify latency, predictions per label, adaptive batch sizes."""
        return render_metrics()

    @info_app.get("/model", response_model=ModelCard, responses=documented(503))
    def model_card(self):
        """Model name, version, labels, evaluation metrics, request limits, and what the worker follows."""
        served = self.follower.current
        if served is None:
            return error_response(503, NOT_LOADED, rollout=self.follower.describe())
        return ModelCard.model_validate({  # meta.json's fields that the card has, and what this worker adds
            **served.predictor.info.model_dump(), "version": served.version,
            "providers": list(served.predictor.providers), "rollout": self.follower.describe(),
            "limits": CONFIG.model_dump(include={"max_texts", "max_chars", "max_body_bytes"})})


def documentation_only() -> None:
    """BentoML answers POST /classify and GET /readyz (its routes come first: this never runs), but its /docs.json
    entries for them list neither our statuses nor our error body; the mounted FastAPI app's entry replaces them."""


VERSION = {"headers": {VERSION_HEADER: {"description": "the model version that answered",
                                        "schema": {"type": "string"}}}}
info_app.add_api_route(
    "/classify", documentation_only, methods=["POST"], tags=["Service APIs"], operation_id="textclf__classify",
    summary="Classify", description=Classifier.apis["classify"].doc, response_model=list[Prediction],
    openapi_extra=json_body(create_model("ClassifyRequest", texts=(Texts, ...))),
    responses={200: VERSION, **documented(400, *AUTH, 413, 415, 503)})
info_app.add_api_route(
    "/readyz", documentation_only, methods=["GET"], tags=["Infrastructure"], response_class=Response,
    summary="Readiness", description="200 once a model is loaded and warmed up, else 503",
    responses={200: PLAIN_TEXT, **documented(503)})
Classifier.add_asgi_middleware(RequestTimer, path="/classify")  # outermost of ours: times 4xx answers too
for guarded in ("/classify", "/feedback"):
    Classifier.add_asgi_middleware(
        RequestGuard, path=guarded, max_body_bytes=CONFIG.max_body_bytes, api_token=CONFIG.api_token
    )
# Inside the guards: only the answers BentoML writes itself (FastAPI routes build theirs with serving/errors.py).
Classifier.add_asgi_middleware(ErrorBodies, paths=("/classify", "/readyz"))

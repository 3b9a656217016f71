"""A fast response path for POST /classify.

BentoML's generic output handling validates the result into a pydantic model, dumps it twice and rebuilds
its JSON schema on every response (about a third of the per-request CPU time under load, per py-spy). The
predictor already returns plain JSON-ready dicts, so this output spec writes them with one `json.dumps`.
The declared type stays `list[Prediction]`, as the OpenAPI document says (serving/service.py).
"""

from __future__ import annotations

import json
from typing import Any

from _bentoml_sdk.io_models import IORootModel  # bentoml is pinned (1.4.39); no public hook exists for this
from starlette.responses import Response

from serving.schemas import Prediction

VERSION_HEADER = "X-Model-Version"


class Answer(dict):
    """One prediction as JSON, plus the version of the model that made it (not in the JSON).

    BentoML's batcher hands each request its own slice of a batch's answers, and one model version scores a
    whole batch, so the version travels with the answers to the response header without any lookup that a
    swap in between could make wrong."""

    __slots__ = ("version",)


class PredictionsOutput(IORootModel[list[Prediction]]):
    media_type = "application/json"

    @classmethod
    async def to_http_response(cls, obj: Any, serde: Any) -> Response:
        if isinstance(obj, IORootModel):
            obj = obj.model_dump(mode="json")
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        version = getattr(obj[0], "version", None) if obj else None
        return Response(body, media_type="application/json",
                        headers={VERSION_HEADER: version} if version is not None else None)

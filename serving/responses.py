"""A fast response path for POST /classify.

BentoML's generic output handling validates the result into a pydantic model, dumps it twice and rebuilds
its JSON schema on every response (about a third of the per-request CPU time under load, per py-spy). The
predictor already returns plain JSON-ready dicts, so this output spec writes them with one `json.dumps`.
The declared type stays `list[Prediction]`, so the OpenAPI document is unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from _bentoml_sdk.io_models import IORootModel  # bentoml is pinned (1.4.39); no public hook exists for this
from starlette.responses import Response

from serving.schemas import Prediction


class PredictionsOutput(IORootModel[list[Prediction]]):
    media_type = "application/json"

    @classmethod
    async def to_http_response(cls, obj: Any, serde: Any) -> Response:
        if isinstance(obj, IORootModel):
            obj = obj.model_dump(mode="json")
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return Response(body, media_type="application/json")

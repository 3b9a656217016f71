"""Baseline (a): FastAPI + onnxruntime, each request scored on its own, one uvicorn worker.

python bench/serve_fastapi_onnx.py --bundle artifacts/bundle --port 3201
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Annotated

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from serving.predictor import OnnxPredictor


class ClassifyRequest(BaseModel):
    texts: Annotated[list[Annotated[str, Field(max_length=2000)]], Field(min_length=1, max_length=32)]


def make_app(bundle: str) -> FastAPI:
    predictor = OnnxPredictor(bundle, intra_op_threads=1)
    predictor.predict_with_ids(["warm-up"])
    app = FastAPI()

    # async def and inline scoring: for a model this small a thread hop costs more than it saves.
    @app.post("/classify")
    async def classify(request: ClassifyRequest) -> list[dict]:
        return predictor.predict_with_ids(request.texts)[0]

    @app.get("/readyz")
    async def readyz() -> str:
        return "ok"

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", default=os.environ.get("TEXTCLF_BUNDLE", "artifacts/bundle"))
    parser.add_argument("--port", type=int, default=3201)
    args = parser.parse_args()
    uvicorn.run(make_app(args.bundle), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

"""Baseline (b): FastAPI + PyTorch eager, each request scored on its own, one uvicorn worker.

Uses the bundle's tokenizer and a pickled torch module (`torch.save(module, path)`) whose forward takes
`input_ids` and returns probabilities, or (probabilities, logits).

    python bench/serve_fastapi_torch.py --bundle artifacts/bundle --torch-model model.pt --port 3202
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Annotated

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field
from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "serving")]  # so the fixture's module class unpickles
from serving.contract import read_meta  # noqa: E402


class ClassifyRequest(BaseModel):
    texts: Annotated[list[Annotated[str, Field(max_length=2000)]], Field(min_length=1, max_length=32)]


def make_app(bundle: Path, torch_model: Path) -> FastAPI:
    torch.set_num_threads(1)  # same compute budget as the ONNX services (one intra-op thread)
    info = read_meta(bundle)
    tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    tokenizer.enable_truncation(info.max_len)
    model = torch.load(torch_model, weights_only=False).eval()
    labels = list(info.labels)
    app = FastAPI()

    def predict(texts: list[str]) -> list[dict]:
        ids = [enc.ids or [1] for enc in tokenizer.encode_batch_fast(texts, add_special_tokens=False)]
        width = max(len(i) for i in ids)
        batch = torch.zeros((len(ids), width), dtype=torch.int64)
        for row, seq in enumerate(ids):
            batch[row, : len(seq)] = torch.tensor(seq)
        with torch.inference_mode():
            out = model(batch)
        probs = (out[0] if isinstance(out, tuple) else out).tolist()
        results = []
        for row in probs:
            best = max(range(len(row)), key=row.__getitem__)
            results.append({"label": labels[best], "score": row[best], "scores": dict(zip(labels, row, strict=True))})
        return results

    @app.post("/classify")
    async def classify(request: ClassifyRequest) -> list[dict]:
        return predict(request.texts)

    @app.get("/readyz")
    async def readyz() -> str:
        return "ok"

    predict(["warm-up"])
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--torch-model", type=Path, required=True)
    parser.add_argument("--port", type=int, default=3202)
    args = parser.parse_args()
    app = make_app(args.bundle, args.torch_model)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

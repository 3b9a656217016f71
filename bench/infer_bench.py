"""ONNX Runtime against PyTorch eager for the champion: time per batch at batch 1 and 32, same texts, same run.

    python -m bench.infer_bench [--bundle artifacts/bundle] [--checkpoint models/<model>/best.ckpt]
Both sides use one intra-op thread and the same padded batches of real test texts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import torch
from tokenizers import Tokenizer

from serving.contract import encode, pad
from training.checkpoints import load_model
from training.export import WithProbabilities


def time_per_batch(run, batches: list[np.ndarray], repeats: int = 3) -> float:
    run(batches[0])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            run(batch)
        best = min(best, (time.perf_counter() - start) / len(batches))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", default="artifacts/bundle", type=Path)
    parser.add_argument("--checkpoint", type=Path, help="default: models/<bundle's model>/best.ckpt")
    parser.add_argument("--texts", default=512, type=int)
    parser.add_argument("--out", default="bench/results/infer.json")
    args = parser.parse_args()
    meta = json.loads((args.bundle / "meta.json").read_text())
    checkpoint = args.checkpoint or Path("models") / meta["model_name"] / "best.ckpt"
    tokenizer = Tokenizer.from_file(str(args.bundle / "tokenizer.json"))
    texts = pd.read_parquet("data/processed/test.parquet")["text"].tolist()[: args.texts]
    ids = encode(tokenizer, texts)
    torch.set_num_threads(1)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(args.bundle / "model.onnx"), options, providers=["CPUExecutionProvider"])
    model = WithProbabilities(load_model(checkpoint)[0]).eval()

    def torch_run(batch: np.ndarray) -> None:
        with torch.inference_mode():
            model(torch.from_numpy(batch))

    results = {"model": meta["model_name"], "texts": len(texts), "threads": 1}
    for size in (1, 32):
        batches = [pad(ids[i : i + size]) for i in range(0, len(ids), size)]
        onnx_s = time_per_batch(lambda b: session.run(["probabilities"], {"input_ids": b}), batches)
        torch_s = time_per_batch(torch_run, batches)
        results[f"batch_{size}"] = {"onnxruntime_ms": onnx_s * 1e3, "pytorch_ms": torch_s * 1e3,
                                    "speedup": torch_s / onnx_s}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""What the ensemble costs at serving time: its ONNX graph against one member's, in-process onnxruntime.

    python -m bench.ensemble_cost --checkpoints models/textrnn/best.ckpt models/rcnn/best.ckpt \
        models/bilstm/best.ckpt [--single rcnn]
Same texts, same padded batches, one intra-op thread each, measured in one run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import onnxruntime as ort
import pandas as pd
from tokenizers import Tokenizer

from bench.infer_bench import time_per_batch
from serving.contract import encode, pad
from training.checkpoints import load_model
from training.ensemble import AveragedProbabilities
from training.export import check_parity, export_onnx


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--checkpoints", nargs="+", type=Path, required=True)
    p.add_argument("--single", default="rcnn", help="the member to compare with (its model name)")
    p.add_argument("--tokenizer", default="data/processed/tokenizer.json")
    p.add_argument("--texts", default=512, type=int)
    p.add_argument("--out", default="bench/results/ensemble_cost.json")
    args = p.parse_args()
    texts = pd.read_parquet("data/processed/test.parquet")["text"].tolist()[: args.texts]
    ids = encode(Tokenizer.from_file(args.tokenizer), texts)
    ensemble = AveragedProbabilities([load_model(c)[0] for c in args.checkpoints]).eval()
    single = next(load_model(c)[0] for c in args.checkpoints if args.single in c.name or args.single in str(c))
    results: dict = {"texts": len(ids), "threads": 1, "single": args.single}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"ensemble": Path(tmp) / "ensemble.onnx", "single": Path(tmp) / "single.onnx"}
        export_onnx(ensemble, paths["ensemble"], {})
        export_onnx(single, paths["single"], {})
        results["ensemble_parity"] = check_parity(ensemble, paths["ensemble"], ids)["max_abs_diff"]
        sessions = {name: session(path) for name, path in paths.items()}
        results["onnx_mb"] = {name: round(path.stat().st_size / 2**20, 1) for name, path in paths.items()}
        for size in (1, 32):
            batches = [pad(ids[i : i + size]) for i in range(0, len(ids), size)]
            ms = {name: 1e3 * time_per_batch(lambda b, s=s: s.run(["probabilities"], {"input_ids": b}), batches)
                  for name, s in sessions.items()}
            results[f"batch_{size}"] = {**{f"{k}_ms": round(v, 3) for k, v in ms.items()},
                                        "ensemble_over_single": round(ms["ensemble"] / ms["single"], 2)}
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

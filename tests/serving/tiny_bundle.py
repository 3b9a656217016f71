"""Build a tiny but real serving bundle (tokenizer.json + model.onnx + meta.json) with training's exporter.

Needs torch and onnx (the `train` extra); serving itself never imports this module.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

TINY_LABELS = ("negative", "neutral", "positive")  # three classes so label-order mistakes show
TINY_TEXTS = (
    "这本书很好看，推荐",
    "质量太差了，不会再买",
    "还行吧，一般般",
    "物流很快，包装完好",
    "The book is great and I love it",
    "terrible quality, broke after a day",
    "it is ok, nothing special",
    "服务态度非常好 very good service",
    "屏幕有点暗 but the battery lasts",
)


def make_tiny_bundle(
    path: str | Path,
    texts: Sequence[str] = TINY_TEXTS,
    labels: Sequence[str] = TINY_LABELS,
    max_len: int = 128,
    model: str = "bilstm",
    dim: int = 16,
    seed: int = 0,
    version: str = "0.0.1",
):
    """Write model.onnx, tokenizer.json and meta.json into `path` with training's own tokenizer, model and
    exporter; return the exported torch module (ids → probabilities, logits)."""
    from training.export import WithProbabilities, export_onnx
    from training.jsonio import write_json
    from training.models import build_model
    from training.tokenizer import file_sha256, train_tokenizer

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts, vocab_size=20_000, min_frequency=1, max_len=max_len)
    tokenizer.save(str(out / "tokenizer.json"))
    torch.manual_seed(seed)
    classifier = build_model(model, tokenizer.get_vocab_size(), len(labels), embedding_dim=dim, hidden_size=dim)
    head = classifier.head[-1] if model == "textrnn" else classifier.classifier
    with torch.no_grad():
        head.weight.mul_(8.0)  # classes well apart, so argmax ties are impossible
    classifier.eval()
    props = {
        "labels": json.dumps(list(labels), ensure_ascii=False),
        "model_name": f"tiny-{model}",
        "version": version,
        "tokenizer_sha256": file_sha256(out / "tokenizer.json"),
    }
    export_onnx(classifier, out / "model.onnx", props)
    write_json(out / "meta.json", {
        "model_name": props["model_name"],
        "version": props["version"],
        "labels": list(labels),
        "max_len": max_len,
        "metrics": {"test": {"accuracy": 0.5, "macro_f1": 0.4}},
        "calibration": {"method": "temperature", "temperature": 1.0, "bins": 15, "val_ece": 0.01, "test_ece": 0.02},
        "data_hash": "0" * 16,
        "git_commit": "0" * 40,
        "created": "2026-11-22T00:00:00+00:00",
    })
    return WithProbabilities(classifier).eval()

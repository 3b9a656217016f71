"""Scoring a checkpoint on a split: accuracy, macro-F1, per-class P/R/F1, confusion matrix."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from training.textdata import TextData


def check_labels(labels: list[str], data: TextData) -> None:
    """A checkpoint trained on other labels would map its outputs to the wrong class names."""
    if list(labels) != data.labels:
        raise ValueError(f"checkpoint labels {list(labels)} differ from the data's {data.labels}: retrain")


@torch.inference_mode()
def predict_logits(module: torch.nn.Module, data: TextData, split: str) -> torch.Tensor:
    """The model's outputs (logits) over a whole split, in its rows' order (the loader batches texts by length)."""
    loader = data.loader(split, shuffle=False)
    order = torch.tensor([i for batch in loader.batch_sampler for i in batch])
    if len(order) != len(data.datasets[split]):  # a distributed trainer attached shards the sampler by rank
        raise RuntimeError(f"the {split} loader yields {len(order)} of {len(data.datasets[split])} rows: "
                           "predict with a datamodule that has no multi-device trainer attached")
    logits = torch.cat([module(input_ids).float() for input_ids, _ in loader])
    return torch.empty_like(logits).index_copy_(0, order, logits)


def predict_proba(module: torch.nn.Module, data: TextData, split: str) -> torch.Tensor:
    """Class probabilities over a whole split, in its rows' order."""
    return predict_logits(module, data, split).softmax(-1)


def score(preds: torch.Tensor, target: torch.Tensor, labels: list[str]) -> dict[str, Any]:
    n = len(labels)
    per_class = {
        "precision": multiclass_precision(preds, target, n, average=None),
        "recall": multiclass_recall(preds, target, n, average=None),
        "f1": multiclass_f1_score(preds, target, n, average=None),
    }
    support = torch.bincount(target, minlength=n)
    return {
        "accuracy": round(float(multiclass_accuracy(preds, target, n, average="micro")), 6),
        "macro_f1": round(float(multiclass_f1_score(preds, target, n, average="macro")), 6),
        "n": len(target),
        "per_class": {
            label: {k: round(float(v[i]), 6) for k, v in per_class.items()} | {"support": int(support[i])}
            for i, label in enumerate(labels)
        },
        "confusion_matrix": multiclass_confusion_matrix(preds, target, n).tolist(),
    }

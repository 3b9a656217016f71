"""ONNX export of a trained classifier and its parity check against PyTorch."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from serving.contract import PAD_ID, pad


class ExportError(RuntimeError):
    """The exported model disagrees with PyTorch, or can't be exported."""


class WithProbabilities(nn.Module):
    """What serving runs: ids → (softmax probabilities, logits)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(input_ids).float()
        return torch.softmax(logits, dim=-1), logits


def export_onnx(model: nn.Module, path: Path, metadata: dict[str, str], opset: int = 17) -> None:
    """Legacy TorchScript exporter with dynamic batch and seq axes: the dynamo one fixes the length of RNNs."""
    wrapped = WithProbabilities(model.eval().cpu())
    example = torch.tensor([[2, 3, 4, 5, 6], [2, 3, PAD_ID, PAD_ID, PAD_ID]], dtype=torch.long)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The exporter warns that LSTMs with a batch other than 1 may misbehave; check_parity proves otherwise.
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # shape checks traced as constants
        torch.onnx.export(
            wrapped, (example,), str(path), dynamo=False, opset_version=opset,
            input_names=["input_ids"], output_names=["probabilities", "logits"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "probabilities": {0: "batch"}, "logits": {0: "batch"}},
        )
    import onnx  # here, not at the top: only exporting needs it

    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def check_parity(model: nn.Module, onnx_path: Path, ids: list[list[int]], atol: float = 1e-5,
                 max_batch: int = 64, seed: int = 0) -> dict[str, float]:
    """ONNX Runtime vs PyTorch on the given texts in random mixed-length batches of 1..max_batch."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    wrapped = WithProbabilities(model.eval().cpu())
    rng = random.Random(seed)
    order = list(range(len(ids)))
    rng.shuffle(order)
    worst, batches, start = 0.0, 0, 0
    while start < len(order):
        size = rng.randint(1, max_batch)
        batch = pad([ids[i] for i in order[start : start + size]])
        start += size
        with torch.inference_mode():
            expected = wrapped(torch.from_numpy(batch))[0].numpy()
        got = session.run(["probabilities"], {"input_ids": batch})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
        batches += 1
    result = {"max_abs_diff": worst, "texts": len(ids), "batches": batches, "atol": atol}
    if worst > atol:
        raise ExportError(f"ONNX and PyTorch probabilities differ by {worst:.2e} > {atol:.0e} on "
                          f"{onnx_path}: the export is wrong; not writing the bundle")
    return result

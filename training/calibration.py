"""Temperature scaling (Guo et al. 2017): one number, fitted on validation, that makes a score mean what it says.

A classifier's softmax is usually over- or under-confident. Dividing its logits by a temperature T, fitted to
minimise the validation negative log-likelihood, keeps every prediction (argmax) and fixes the confidence.
`Calibrated` carries T inside the model, so the ONNX graph holds it, parity is checked on it and serving
changes nothing. The error is measured as torchmetrics' expected calibration error (15 bins, top label).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.functional import cross_entropy

BINS = 15
_LOG_T_BOUNDS = (math.log(0.05), math.log(20.0))  # wide enough for any sane model; keeps T positive


class Calibrated(nn.Module):
    """ids → the model's logits divided by `temperature`: the same predictions, calibrated confidence."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.model = model
        self.temperature = float(temperature)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids).float() / self.temperature


def fit_temperature(logits: torch.Tensor, target: torch.Tensor) -> float:
    """The T > 0 that minimises the mean NLL of softmax(logits / T) on these (validation) rows."""
    from scipy.optimize import minimize_scalar  # here: export needs Calibrated, not the fitting

    logits, target = logits.double(), target.long()

    def nll(log_t: float) -> float:
        return float(cross_entropy(logits / math.exp(log_t), target))

    best = minimize_scalar(nll, bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return round(math.exp(best.x), 4)


def calibration_error(probs: torch.Tensor, target: torch.Tensor, bins: int = BINS) -> float:
    """Expected calibration error of the top label: the bin-weighted gap between confidence and accuracy."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    return round(float(multiclass_calibration_error(probs.float(), target.long(), probs.shape[-1], n_bins=bins,
                                                    norm="l1")), 6)


def reliability(probs: torch.Tensor, target: torch.Tensor, bins: int = BINS) -> list[dict[str, float]]:
    """Per confidence bin: its range, how many rows, their mean confidence and their accuracy."""
    confidence, predicted = probs.max(-1)
    correct = (predicted == target).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.double)
    index = torch.bucketize(confidence.double(), edges[1:-1], right=True)  # torchmetrics' (lo, hi] binning
    rows = []
    for b in range(bins):
        inside = index == b
        n = int(inside.sum())
        rows.append({"low": round(float(edges[b]), 4), "high": round(float(edges[b + 1]), 4), "count": n,
                     "confidence": round(float(confidence[inside].double().mean()), 4) if n else None,
                     "accuracy": round(float(correct[inside].mean()), 4) if n else None})
    return rows


def reliability_figure(curves: dict[str, list[dict[str, float]]], title: str):
    """The reliability diagram: accuracy against confidence per bin, one line per curve, the diagonal as ideal."""
    from matplotlib.figure import Figure  # not pyplot: no backend to pick, no figure left open

    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    for name, rows in curves.items():
        used = [r for r in rows if r["count"]]
        ax.plot([r["confidence"] for r in used], [r["accuracy"] for r in used], marker="o", label=name)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence of the top label", ylabel="accuracy", title=title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def calibrate(model: nn.Module, logits: dict[str, torch.Tensor],
              targets: dict[str, torch.Tensor]) -> tuple[Calibrated, dict]:
    """Fit T on logits["val"]; the calibrated model and a report of ECE before and after on every split given."""
    temperature = fit_temperature(logits["val"], targets["val"])
    report: dict = {"method": "temperature", "temperature": temperature, "bins": BINS, "fitted_on": "val"}
    for split, split_logits in logits.items():
        report[f"{split}_ece"] = calibration_error((split_logits / temperature).softmax(-1), targets[split])
        report[f"{split}_ece_uncalibrated"] = calibration_error(split_logits.softmax(-1), targets[split])
    return Calibrated(model, temperature), report


def reliability_curves(logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                       temperature: float) -> dict[str, list[dict]]:
    """Reliability rows per split, calibrated and not: what the diagram draws and metrics/<model>.json keeps."""
    curves = {}
    for split, split_logits in logits.items():
        curves[f"{split}, T={temperature:g}"] = reliability((split_logits / temperature).softmax(-1), targets[split])
        curves[f"{split}, uncalibrated"] = reliability(split_logits.softmax(-1), targets[split])
    return curves

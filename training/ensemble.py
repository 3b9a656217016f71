"""The ensemble candidate: the trained classifiers' averaged probabilities as one model (and one ONNX graph)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from training.evaluation import load_classifier

CHECKPOINT_SUFFIX = ".ckpt"


class AveragedProbabilities(nn.Module):
    """ids → log of the members' mean softmax: a softmax over it gives back exactly that mean.

    Each member is padding-invariant, so the average is too.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([m(input_ids).float().softmax(-1) for m in self.members]).mean(0)
        return probs.clamp_min(1e-12).log()


def load_ensemble(checkpoints: list[Path]) -> tuple[AveragedProbabilities, list[str]]:
    """Members from their checkpoints; all must share one label order."""
    modules = [load_classifier(path) for path in checkpoints]
    labels = list(modules[0].hparams.labels)
    for path, module in zip(checkpoints, modules, strict=True):
        if list(module.hparams.labels) != labels:
            raise ValueError(f"{path} was trained on labels {module.hparams.labels}, not {labels}: retrain it")
    return AveragedProbabilities([m.model for m in modules]).eval(), labels


def load_candidate(folder: Path) -> tuple[nn.Module, list[str], str]:
    """(model, labels, name) from a champion's checkpoint folder: best.ckpt, or one <model>.ckpt per member."""
    single = folder / f"best{CHECKPOINT_SUFFIX}"
    if single.is_file():
        module = load_classifier(single)
        return module.model, list(module.hparams.labels), module.hparams.model_name
    members = sorted(folder.glob(f"*{CHECKPOINT_SUFFIX}"))
    if not members:
        raise FileNotFoundError(f"checkpoint {single} not found, nor an ensemble's member checkpoints in {folder}: "
                                "run the train stage for this model first (or the ensemble stage)")
    model, labels = load_ensemble(members)
    return model, labels, "ensemble"

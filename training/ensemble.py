"""The ensemble candidate: the trained classifiers' averaged probabilities as one model (and one ONNX graph)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from training.checkpoints import load_model

CHECKPOINT = "best.ckpt"  # each trained model's folder holds its best checkpoint under this name


class AveragedProbabilities(nn.Module):
    """ids → log of the members' mean softmax: a softmax over it gives back exactly that mean.

    Each member is padding-invariant, so the average is too.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return mean_log_probs([m(input_ids) for m in self.members])


def mean_log_probs(outputs: list[torch.Tensor]) -> torch.Tensor:
    """The members' logits → the log of their mean softmax (what the ensemble outputs for the same inputs)."""
    probs = torch.stack([o.float().softmax(-1) for o in outputs]).mean(0)
    return probs.clamp_min(1e-12).log()


def load_member(folder: Path) -> tuple[nn.Module, list[str]]:
    """(model, labels) from a trained model's folder (models/<model>/best.ckpt)."""
    return load_model(folder / CHECKPOINT)


def load_ensemble(models_dir: Path, members: list[str]) -> tuple[AveragedProbabilities, list[str]]:
    """The members' checkpoints (models_dir/<member>/best.ckpt) averaged; all must share one label order."""
    loaded = {m: load_member(models_dir / m) for m in members}
    labels = next(iter(loaded.values()))[1]
    for member, (_, member_labels) in loaded.items():
        if member_labels != labels:
            raise ValueError(f"{models_dir / member} was trained on labels {member_labels}, not {labels}: "
                             "retrain it")
    return AveragedProbabilities([model for model, _ in loaded.values()]).eval(), labels


def load_candidate(models_dir: Path, name: str, members: list[str] | None = None) -> tuple[nn.Module, list[str]]:
    """(model, labels) of a candidate select chose: the trained model `name`, or the ensemble of `members`."""
    if members:
        return load_ensemble(models_dir, members)
    return load_member(models_dir / name)

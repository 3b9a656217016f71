"""Reading a trained classifier back from its checkpoint (models/<model>/best.ckpt).

Kept apart from scoring so that export, which needs the model and not the metrics, imports neither torchmetrics
nor Lightning.
"""

from __future__ import annotations

from pathlib import Path

import torch

from training.models import build_model


class CheckpointError(FileNotFoundError):
    """A checkpoint is missing or can't be read."""


def load_model(path: str | Path) -> tuple[torch.nn.Module, list[str]]:
    """(the classifier in eval mode, its labels) from a checkpoint, built from its hyperparameters without
    importing Lightning: what evaluation, the ensemble and export need, seconds sooner in every stage. A missing
    or unreadable checkpoint is a CheckpointError that says what to do."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found: run the train stage for this model first")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        hp = checkpoint["hyper_parameters"]
        model = build_model(hp["model_name"], hp["vocab_size"], len(hp["labels"]), **hp["model_config"])
        model.load_state_dict({k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()
                               if k.startswith("model.")})  # not the loss's class weights
    except Exception as err:  # torch raises many kinds for a truncated or foreign file
        raise CheckpointError(f"checkpoint {path} can't be read ({type(err).__name__}: {err}); retrain it") from None
    return model.eval(), list(hp["labels"])

"""A trained model's logits on val and test, saved by its evaluate stage and reused by the ensemble.

The ensemble averages its members' probabilities, so scoring every subset and the chosen one needs nothing but
the members' outputs on the held-out splits, which evaluate has just computed. Reading them back instead of
running every member again over val and test saves the ensemble stage most of its time on a big corpus (four
members over 400k held-out texts at 2M). A saved file is used only when its key matches: the sha256 of the
checkpoint and of the val and test token files, so a retrained model or a changed split is predicted afresh.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from training.evaluation import predict_logits
from training.textdata import TextData
from training.token_store import META

log = logging.getLogger("textclf.split_logits")

SPLITS = ("val", "test")


def _digest(paths: list[Path]) -> str:
    sha = hashlib.sha256()
    for path in paths:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 22):
                sha.update(chunk)
    return sha.hexdigest()


def held_out_digest(data_dir: Path) -> str:
    """The held-out splits' token files (and the store's meta) as one sha256: hashed once a stage, however many
    models it reads logits for."""
    tokens = data_dir / "tokens"
    files = [tokens / f"{s}.{part}" for s in SPLITS for part in ("ids.bin", "offsets.npy", "labels.npy")]
    return _digest([tokens / META, *files])


def logits_key(checkpoint: Path, held_out: str) -> str:
    """What the logits depend on: the checkpoint's bytes and the held-out splits (`held_out_digest`)."""
    return f"{_digest([checkpoint])}:{held_out}"


def predict_held_out(model: torch.nn.Module, data: TextData) -> dict[str, torch.Tensor]:
    return {s: predict_logits(model, data, s) for s in SPLITS}


def save_logits(path: Path, logits: dict[str, torch.Tensor], key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:  # a file object: np.savez would append .npz to a name without it
        np.savez(fh, key=np.array(key), **{s: logits[s].numpy() for s in SPLITS})


def load_logits(path: Path, key: str) -> dict[str, torch.Tensor] | None:
    """The saved logits if they were made from this checkpoint and these splits, else None."""
    if not path.is_file():
        return None
    with np.load(path) as saved:
        if str(saved["key"]) != key:
            return None
        return {s: torch.from_numpy(saved[s]) for s in SPLITS}


def held_out_logits(model: torch.nn.Module, checkpoint: Path, data: TextData, saved: Path,
                    held_out: str) -> dict[str, torch.Tensor]:
    """The model's val and test logits: read back from `saved` when they match, predicted otherwise."""
    logits = load_logits(saved, logits_key(checkpoint, held_out))
    if logits is not None:
        return logits
    log.info("%s: no saved logits for this checkpoint and these splits; predicting val and test", saved)
    return predict_held_out(model, data)

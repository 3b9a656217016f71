"""Initialising a classifier from the pretrained language models: embedding and matching LSTM layers."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn


class TransferError(ValueError):
    """The language model does not fit the classifier (vocabulary, sizes)."""


def load_lm_bundle(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise TransferError(f"language model {path} not found: run the pretrain stage or set "
                            "train.trainer.init_from_lm: false")
    return torch.load(path, map_location="cpu", weights_only=False)


def _copy(target: nn.Module, source: dict[str, torch.Tensor], what: str) -> None:
    own = target.state_dict()
    for key, value in source.items():
        if own[key].shape != value.shape:
            raise TransferError(f"{what}: {key} is {tuple(value.shape)} in the language model but "
                                f"{tuple(own[key].shape)} in the classifier; set embedding_dim and hidden_size "
                                "to the pretrain section's values or turn off init_from_lm")
    target.load_state_dict(source)


def _layer(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


Layers = Literal["all", "embedding"]


def init_from_lm(model: nn.Module, bundle: dict, tokenizer_sha256: str, layers: Layers = "all") -> list[str]:
    """Copy the LM's weights into `model` in place; return the names of the parameters that were set.

    layers="embedding" takes only the embedding and leaves the LSTM layers randomly initialised: with few
    labels, the LSTM layers of a small, briefly trained language model can be a worse start than random
    ones (bench/RESULTS.md compares both).
    """
    if layers not in ("all", "embedding"):
        raise TransferError(f"layers must be 'all' or 'embedding', not {layers!r}")
    if bundle["tokenizer_sha256"] != tokenizer_sha256:
        raise TransferError("the language model was trained with another tokenizer (its vocabulary does not "
                            "match the classifier's): rerun pretrain after preprocess")
    loaded: list[str] = []
    forward, backward = bundle["forward"], bundle.get("backward")
    _copy(model.embedding, _layer(forward, "embedding."), "embedding")
    loaded += [f"embedding.{k}" for k in model.embedding.state_dict()]
    encoder = model.encoder
    if layers == "embedding" or encoder.cell != "lstm":
        return loaded  # embedding only, asked for or because an RNN/GRU cell has no LSTM weights to take
    lm_layers = bundle["config"]["num_layers"]
    directions = [("forward_layers", forward)]
    if encoder.backward_layers is not None:
        if backward is None:
            raise TransferError("the language model has no backward direction (pretrain trains one only when "
                                "train.trainer.lm_transfer is all): rerun `dvc repro pretrain`")
        directions.append(("backward_layers", backward))
    for attr, state in directions:
        for i, layer in enumerate(getattr(encoder, attr)):
            if i >= lm_layers or (i > 0 and encoder.bidirectional):
                break  # upper layers of a bidirectional stack read both directions: no LM layer matches
            _copy(layer, _layer(state, f"layers.{i}."), f"{attr}[{i}]")
            loaded += [f"encoder.{attr}.{i}.{k}" for k in layer.state_dict()]
    return loaded

"""Adversarial and virtual adversarial training on the word embeddings (Miyato, Dai and Goodfellow 2017).

Each training step adds a second loss on the same batch with its embeddings moved by a small perturbation:
- `at`: along the gradient of the classification loss (the direction that hurts most), labels needed;
- `vat`: along the direction that changes the model's own prediction most (one power iteration from a random
  direction), the KL divergence between the clean and the perturbed prediction; labels not needed.
The perturbation's norm is `epsilon` times the norm of the text's embeddings, per text, so one setting works
whatever the scale of the (pretrained or fresh) embeddings. Only training changes: a forward hook on the
model's embedding layer adds the perturbation during the step and is removed afterwards, so evaluation,
export and serving see the plain model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.functional import cross_entropy, kl_div, log_softmax

KINDS = ("none", "at", "vat")
_XI = 1e-3  # the power iteration's probe, relative to the embeddings' norm (Miyato et al. use a small constant)


def _per_text_norm(x: torch.Tensor) -> torch.Tensor:
    """L2 norm over every axis but the batch, shaped to broadcast back: [batch, 1, 1]."""
    return x.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))


class EmbeddingWatch:
    """While active, keeps the embedding layer's clean output and adds `delta` to it when one is set."""

    def __init__(self) -> None:
        self.clean: torch.Tensor | None = None
        self.delta: torch.Tensor | None = None

    def __call__(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        if self.delta is None:
            self.clean = output
            return output
        return output + self.delta

    def step_of(self, direction: torch.Tensor, epsilon: float) -> torch.Tensor:
        """A perturbation along `direction` with norm epsilon × the clean embeddings' norm, per text."""
        scale = epsilon * _per_text_norm(self.clean.detach())
        return (scale * direction / _per_text_norm(direction)).detach()


class Adversarial:
    """The extra loss of one training step; `kind` is `at` or `vat`."""

    def __init__(self, kind: str, epsilon: float, weight: float = 1.0) -> None:
        if kind not in KINDS[1:]:
            raise ValueError(f"adversarial must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind, self.epsilon, self.weight = kind, epsilon, weight

    @contextmanager
    def watching(self, model: nn.Module) -> Iterator[EmbeddingWatch]:
        embedding = getattr(model, "embedding", None)
        if not isinstance(embedding, nn.Embedding):
            raise ValueError(f"{type(model).__name__} has no embedding layer to perturb: turn adversarial off")
        watch = EmbeddingWatch()
        with embedding.register_forward_hook(watch):  # the handle removes the hook on the way out
            yield watch

    def loss(self, model: nn.Module, watch: EmbeddingWatch, input_ids: torch.Tensor, target: torch.Tensor,
             clean_loss: torch.Tensor, clean_logits: torch.Tensor) -> torch.Tensor:
        """The weighted adversarial loss; call inside `watching` after the clean forward pass."""
        if watch.clean is None:
            raise RuntimeError("the clean forward pass did not go through the embedding layer")
        if self.kind == "at":
            (grad,) = torch.autograd.grad(clean_loss, watch.clean, retain_graph=True)
            watch.delta = watch.step_of(grad, self.epsilon)
            extra = cross_entropy(model(input_ids).float(), target)
        else:
            clean = log_softmax(clean_logits.detach().float(), -1)
            probe = watch.step_of(torch.randn_like(watch.clean), _XI).requires_grad_()
            watch.delta = probe
            divergence = kl_div(log_softmax(model(input_ids).float(), -1), clean, log_target=True,
                                reduction="batchmean")
            (grad,) = torch.autograd.grad(divergence, probe)
            watch.delta = watch.step_of(grad, self.epsilon)
            extra = kl_div(log_softmax(model(input_ids).float(), -1), clean, log_target=True, reduction="batchmean")
        watch.delta = None
        return self.weight * extra

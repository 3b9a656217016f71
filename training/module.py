"""The LightningModule: cross-entropy, AdamW with warm-up + cosine, accuracy and macro-F1 per epoch."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from lightning import LightningModule
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from training.adversarial import Adversarial
from training.models import build_model
from training.transfer import Layers, init_from_lm


def _metrics(num_classes: int, prefix: str) -> MetricCollection:
    return MetricCollection(
        {"acc": MulticlassAccuracy(num_classes, average="micro"),
         "macro_f1": MulticlassF1Score(num_classes, average="macro")},
        prefix=prefix,
    )


class TextClassifier(LightningModule):
    def __init__(
        self, model_name: str, model_config: dict[str, Any], vocab_size: int, labels: list[str],
        lr: float = 2e-3, weight_decay: float = 0.01, warmup_ratio: float = 0.1,
        class_weights: list[float] | None = None, label_smoothing: float = 0.0, ngram_lr_scale: float = 1.0,
        adversarial: str = "none", adversarial_epsilon: float = 0.05, adversarial_weight: float = 1.0,
        schedule_epochs: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(model_name, vocab_size, len(labels), **model_config)
        weight = torch.tensor(class_weights, dtype=torch.float) if class_weights else None
        self.loss = nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
        self.train_metrics = _metrics(len(labels), "train_")
        self.val_metrics = _metrics(len(labels), "val_")
        self.test_metrics = _metrics(len(labels), "test_")
        self.pretrained_params: list[str] = []  # set by init_from_language_model
        self.pretrained_lr_scale = 1.0
        self.adversarial = (Adversarial(adversarial, adversarial_epsilon, adversarial_weight)
                            if adversarial != "none" else None)

    def init_from_language_model(self, bundle: dict, tokenizer_sha256: str, lr_scale: float,
                                 layers: Layers = "all") -> list[str]:
        self.pretrained_params = init_from_lm(self.model, bundle, tokenizer_sha256, layers)
        self.pretrained_lr_scale = lr_scale
        return self.pretrained_params

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, metrics: MetricCollection):
        input_ids, target = batch
        logits = self(input_ids)
        loss = self.loss(logits.float(), target)
        metrics.update(logits, target)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=stage != "test",
                 batch_size=len(target), sync_dist=True)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage == "val")
        return loss, logits

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        if self.adversarial is None:
            return self._step(batch, "train", self.train_metrics)[0]
        with self.adversarial.watching(self.model) as watch:
            loss, logits = self._step(batch, "train", self.train_metrics)
            extra = self.adversarial.loss(self.model, watch, *batch, loss, logits)
        self.log("train_adversarial_loss", extra, on_step=False, on_epoch=True, batch_size=len(batch[1]))
        return loss + extra

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val", self.val_metrics)

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test", self.test_metrics)

    def configure_optimizers(self):
        hp = self.hparams
        # Weight decay on matrices only; LM-initialised weights learn at a lower rate so they aren't washed out;
        # the n-gram path's weights, each seen by few texts, at a higher one (as fastText's linear model does).
        pretrained = {f"model.{name}" for name in self.pretrained_params}
        groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
        for name, param in self.named_parameters():
            decay = param.ndim >= 2 and "embedding" not in name
            part = "ngrams" if name.startswith("model.ngrams.") else "pretrained" if name in pretrained else "network"
            groups.setdefault((part, decay), []).append(param)
        scales = {"network": 1.0, "pretrained": self.pretrained_lr_scale, "ngrams": hp.get("ngram_lr_scale", 1.0)}
        # Named groups: LearningRateMonitor logs them as lr-AdamW/network, lr-AdamW/ngrams, ... not pg1, pg2.
        optimizer = torch.optim.AdamW([
            {"params": params, "name": part if decay else f"{part}_no_decay",
             "weight_decay": hp.weight_decay if decay else 0.0, "lr": hp.lr * scales[part]}
            for (part, decay), params in groups.items()
        ], lr=hp.lr)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        if hp.get("schedule_epochs") and self.trainer.max_epochs:  # the cosine runs past where training stops
            total = max(1, round(total * hp.schedule_epochs / self.trainer.max_epochs))
        warmup = int(total * hp.warmup_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(warmup_cosine, warmup=warmup, total=total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to the peak learning rate, then cosine decay to zero at the last step."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

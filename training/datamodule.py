"""The processed splits as a LightningDataModule: TextData, its batches sharded across the trainer's processes."""

from __future__ import annotations

from lightning import LightningDataModule
from torch.utils.data import DataLoader

from training.budget import recorded
from training.textdata import TextData


class TextDataModule(TextData, LightningDataModule):
    def __init__(self, *args, **kwargs) -> None:
        LightningDataModule.__init__(self)  # sets .trainer (None until a trainer attaches it)
        TextData.__init__(self, *args, **kwargs)

    def shard(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer else (0, 1)

    def train_dataloader(self) -> DataLoader:
        # Recorded: the budget ledger (training/budget.py) counts which train rows each step read.
        return recorded(super().train_dataloader())

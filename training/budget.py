"""The training budget: how many train texts an epoch sees, and what a run actually read.

At 2M texts one recurrent epoch on 2 CPU cores takes over an hour, so `train.trainer.texts_per_epoch` caps the
texts each epoch sees (Lightning's limit_train_batches as a batch count) and `train.trainer.max_time` the wall
time. The bucket sampler reshuffles each epoch, so capped epochs read different subsets of the train split.

`BudgetLedger` counts what the loop trained on, per rank, and `RecordedBatches` tells it which rows those were,
so the report says how many texts a run saw, how many distinct ones, and why it stopped.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping
from torch.utils.data import DataLoader, Sampler

log = logging.getLogger("textclf.budget")

# `texts_per_epoch: auto` runs full epochs up to this many train rows (sentence views included) and caps bigger
# splits at it: the built-in corpus (~14k rows) trains as without a cap; a 2M-text corpus reads 200k texts an epoch,
# about 7 minutes of rcnn on 2 cores.
AUTO_TEXTS_PER_EPOCH = 200_000

StoppedBy = Literal["epochs", "early_stopping", "max_time"]


def on_cpu(accelerator: str) -> bool:
    """Whether training runs on the CPU: `cpu`, or `auto` on a machine with no GPU."""
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


def resolve_texts_per_epoch(setting: int | Literal["auto"] | None, train_rows: int, limit_train_batches: float = 1.0,
                            auto_limit: int = AUTO_TEXTS_PER_EPOCH, cpu: bool = True) -> int | None:
    """The cap on train texts per epoch, or None for full epochs.

    auto caps only splits above `auto_limit` and only on the CPU (GPUs train full epochs), and never where
    limit_train_batches already limits the epoch (an explicit limit wins over the automatic one; params.py
    refuses an explicit pair)."""
    if setting is None:
        return None
    if setting == "auto":
        return auto_limit if cpu and train_rows > auto_limit and limit_train_batches == 1.0 else None
    return int(setting)


def batches_per_rank(texts: int, batch_size: int, world_size: int) -> int:
    """limit_train_batches for a cap of `texts` an epoch: Lightning's limit counts each process's batches."""
    return max(1, math.ceil(texts / (batch_size * world_size)))


class RecordedBatches(Sampler[list[int]]):
    """A batch sampler that remembers the batches it handed out and the loop has not trained on yet.

    The loader fetches a batch or two ahead of the step (prefetching), so BudgetLedger pops the oldest one at
    each train step: the rows of the batch being trained. The wrapped sampler's attribute is not named
    `sampler`, so Lightning leaves its epoch counter alone, as before the wrapper.
    """

    def __init__(self, batches: Sampler[list[int]]) -> None:
        self.batches = batches
        self.pending: deque[list[int]] = deque()

    def __iter__(self) -> Iterator[list[int]]:
        self.pending.clear()  # a new epoch: what the last one prefetched was never trained on
        for rows in self.batches:
            self.pending.append(rows)
            yield rows

    def __len__(self) -> int:
        return len(self.batches)


def recorded(loader: DataLoader) -> DataLoader:
    """The same loader with its batch sampler wrapped in RecordedBatches (a DataLoader's sampler is fixed)."""
    workers = loader.num_workers
    return DataLoader(
        loader.dataset, batch_sampler=RecordedBatches(loader.batch_sampler), collate_fn=loader.collate_fn,
        num_workers=workers, pin_memory=loader.pin_memory, timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn, multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator, persistent_workers=loader.persistent_workers,
        **({"prefetch_factor": loader.prefetch_factor} if workers else {}),
    )


class BudgetLedger(Callback):
    """Per rank: texts and batches trained, the train seconds without validation, and how often each row was read.

    At the end of training the ranks' counts are summed (a collective: every rank reaches on_train_end), so rank 0
    can report the run as a whole: `report()`.
    """

    def __init__(self, texts_per_epoch: int | None, max_time: str | None, setting: Any = None) -> None:
        self.texts_per_epoch, self.max_time, self.setting = texts_per_epoch, max_time, setting
        self.epoch_batches: list[int] = []
        self.texts = self.batches = 0
        self.train_seconds = self._validation_seconds = 0.0
        self.reads: np.ndarray | None = None  # per train row: how many times this rank trained on it
        self.summary: dict[str, Any] = {}

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        loader = trainer.train_dataloader
        if isinstance(getattr(loader, "batch_sampler", None), RecordedBatches):
            self.reads = np.zeros(len(loader.dataset), dtype=np.int32)

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.epoch_batches.append(0)
        self._epoch_start, self._validation_seconds = time.perf_counter(), 0.0

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.reads is None:
            return
        rows = trainer.train_dataloader.batch_sampler.pending.popleft()
        if len(rows) != len(batch[1]):  # only an out-of-order loader could do this: the row counts would be wrong
            raise RuntimeError(f"train batch {batch_idx} has {len(batch[1])} texts, its sampler gave {len(rows)}")
        self.reads[rows] += 1  # rows within a batch are distinct

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.texts += len(batch[1])
        self.batches += 1
        self.epoch_batches[-1] += 1

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._validation_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._validation_seconds += time.perf_counter() - self._validation_start

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # Lightning validates before on_train_epoch_end: its time is not train time.
        self.train_seconds += time.perf_counter() - self._epoch_start - self._validation_seconds

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        strategy = trainer.strategy
        mine = torch.tensor([self.batches, self.texts], dtype=torch.long)
        per_rank = strategy.all_gather(mine).reshape(-1, 2).tolist()
        reads = None if self.reads is None else strategy.reduce(torch.from_numpy(self.reads), reduce_op="sum")
        log.info("rank %d of %d: trained on %d batches, %d texts", trainer.global_rank, trainer.world_size,
                 self.batches, self.texts)
        texts_seen = sum(texts for _, texts in per_rank)
        self.summary = {
            "texts_per_epoch": self.texts_per_epoch, "texts_per_epoch_setting": self.setting,
            "max_time": self.max_time, "train_rows": len(trainer.train_dataloader.dataset),
            "batches_per_epoch": int(trainer.num_training_batches), "epochs_run": len(self.epoch_batches),
            "stopped_by": stopped_by(trainer, self.epoch_batches),
            "texts_seen": texts_seen, "distinct_texts_seen": None if reads is None else int((reads > 0).sum()),
            "train_seconds": round(self.train_seconds, 2),
            "texts_per_second": round(texts_seen / self.train_seconds, 1) if self.train_seconds else None,
            "world_size": trainer.world_size,
            "ranks": [{"rank": r, "batches": b, "texts": t} for r, (b, t) in enumerate(per_rank)],
        }


def stopped_by(trainer: L.Trainer, epoch_batches: list[int]) -> StoppedBy:
    """Why fit ended: every planned epoch ran, early stopping ended it at an epoch's end, or the time ran out.

    max_time is checked after each train batch, so a run it stops usually ends mid-epoch (Lightning validates
    before it stops, so the best checkpoint is still chosen on validation)."""
    last_complete = bool(epoch_batches) and epoch_batches[-1] >= trainer.num_training_batches
    if last_complete and len(epoch_batches) >= (trainer.max_epochs or 0):
        return "epochs"
    stopper = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)
    if last_complete and stopper is not None and stopper.stopped_epoch > 0:
        return "early_stopping"
    return "max_time"

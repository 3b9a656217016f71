"""Splits → token ids → length-bucketed, right-padded batches.

No Lightning here: evaluation, the ensemble and select read the splits without paying for its import;
training/datamodule.py makes this a LightningDataModule for the trainer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tokenizers import Tokenizer
from torch.utils.data import DataLoader, Sampler

from serving.contract import encode, pad
from training import augment

SPLITS = ("train", "val", "test")


class BucketBatchSampler(Sampler[list[int]]):
    """Shuffle, cut into chunks of `bucket_batches` batches, sort each chunk by length, batch, shuffle batches.

    Texts of like length share a batch, so padding stays small while order still varies per epoch.
    Under DDP each rank takes every `world_size`-th batch of the same seeded order.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, bucket_batches: int = 50, shuffle: bool = True,
        seed: int = 0, rank: int = 0, world_size: int = 1,
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size, self.bucket_batches, self.shuffle = batch_size, bucket_batches, shuffle
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[np.ndarray]:
        n = len(self.lengths)
        if not self.shuffle:  # evaluation: sort everything, order doesn't matter
            order = np.argsort(self.lengths, kind="stable")
            return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(n)
        chunk = self.batch_size * self.bucket_batches
        batches = []
        for start in range(0, n, chunk):
            part = order[start : start + chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[list[int]]:
        self.epoch += 1
        batches = self._batches()
        if self.world_size > 1:  # every rank the same number of batches, or DDP hangs
            usable = len(batches) - len(batches) % self.world_size if self.shuffle else len(batches)
            batches = batches[self.rank : usable : self.world_size]
        return iter(b.tolist() for b in batches)

    def __len__(self) -> int:
        total = -(-len(self.lengths) // self.batch_size)
        if self.world_size > 1:
            return total // self.world_size if self.shuffle else -(-(total - self.rank) // self.world_size)
        return total


class Collate:
    """Right-pad to the batch's longest text, or to `pad_to` when set (the unbucketed baseline)."""

    def __init__(self, pad_to: int | None = None) -> None:
        self.pad_to = pad_to

    def __call__(self, items: list[tuple[list[int], int]]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = [ids[: self.pad_to] if self.pad_to else ids for ids, _ in items]
        return torch.from_numpy(pad(ids, self.pad_to)), torch.tensor([label for _, label in items], dtype=torch.long)


class EncodedSplit(torch.utils.data.Dataset):
    def __init__(self, ids: list[list[int]], labels: list[int]) -> None:
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.ids[i], self.labels[i]


def read_labels(train: pd.DataFrame) -> list[str]:
    """Label order = sorted label strings of the train split: stable across runs and machines."""
    return sorted(train["label"].astype(str).unique())


class TextData:
    """The processed splits, tokenised once, and their loaders."""

    def __init__(
        self, data_dir: str | Path, tokenizer_path: str | Path, batch_size: int = 64,
        bucket_batches: int = 50, pad_to_max_len: bool = False, seed: int = 0, sentence_views: int = 0,
    ) -> None:
        self.data_dir, self.tokenizer_path = Path(data_dir), Path(tokenizer_path)
        self.batch_size, self.bucket_batches, self.seed = batch_size, bucket_batches, seed
        self.pad_to_max_len = pad_to_max_len
        self.tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
        self.max_len = self.tokenizer.truncation["max_length"]
        frames = {s: pd.read_parquet(self.data_dir / f"{s}.parquet") for s in SPLITS}
        self.labels = read_labels(frames["train"])
        index = {label: i for i, label in enumerate(self.labels)}
        self.frames = frames
        self.datasets = {
            s: EncodedSplit(encode(self.tokenizer, f["text"].tolist()), [index[x] for x in f["label"]])
            for s, f in frames.items()
        }
        if sentence_views:  # extra train rows only: val and test stay the texts as written
            train = self.datasets["train"]
            texts, labels = augment.sentence_views(frames["train"]["text"].tolist(), train.labels, sentence_views, seed)
            self.datasets["train"] = EncodedSplit(train.ids + encode(self.tokenizer, texts), train.labels + labels)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def class_counts(self) -> list[int]:
        return np.bincount(self.datasets["train"].labels, minlength=len(self.labels)).tolist()

    def loader(self, split: str, shuffle: bool) -> DataLoader:
        """Length-bucketed batches of one split; shuffled (and re-ordered each epoch) for training."""
        dataset = self.datasets[split]
        rank, world = self.shard()
        sampler = BucketBatchSampler(
            [len(x) for x in dataset.ids], self.batch_size, self.bucket_batches, shuffle, self.seed, rank, world
        )
        collate = Collate(self.max_len if self.pad_to_max_len else None)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)

    def shard(self) -> tuple[int, int]:
        """(this process's rank, how many processes share the batches): one process unless a trainer says."""
        return 0, 1

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)

"""The token store → length-bucketed, right-padded batches.

No Lightning here: evaluation, the ensemble and select read the splits without paying for its import;
training/datamodule.py makes this a LightningDataModule for the trainer."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch.utils.data import DataLoader, Sampler

from serving.contract import encode, pad
from training import augment
from training.prepare import iter_texts
from training.token_store import StackedSplit, TokenSplit, open_store, write_split


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


class TextData:
    """The processed splits' token ids, read lazily from the token store preprocess wrote, and their loaders."""

    def __init__(
        self, data_dir: str | Path, tokenizer_path: str | Path, batch_size: int = 64,
        bucket_batches: int = 50, pad_to_max_len: bool = False, seed: int = 0, sentence_views: int = 0,
    ) -> None:
        self.data_dir, self.tokenizer_path = Path(data_dir), Path(tokenizer_path)
        self.batch_size, self.bucket_batches, self.seed = batch_size, bucket_batches, seed
        self.pad_to_max_len = pad_to_max_len
        self.tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
        self.max_len = self.tokenizer.truncation["max_length"]
        meta, self.datasets = open_store(self.data_dir, self.tokenizer_path)
        self.labels = meta.labels
        if sentence_views:  # extra train rows only: val and test stay the texts as written
            self._views = tempfile.TemporaryDirectory(prefix="textclf-views-")
            self.datasets["train"] = StackedSplit([self.datasets["train"], self._sentence_views(sentence_views)])

    def _sentence_views(self, per_text: int) -> TokenSplit:
        """The train texts' sentence views, encoded in batches into a store of their own (a temporary folder)."""
        folder = Path(self._views.name)
        views = augment.iter_sentence_views(self.texts("train"), self.datasets["train"].labels, per_text, self.seed)
        batches = iter(lambda: list(itertools.islice(views, 50_000)), [])
        write_split(folder, "train", ((encode(self.tokenizer, [t for t, _ in b]), [y for _, y in b]) for b in batches))
        return TokenSplit(folder, "train")

    def texts(self, split: str, limit: int | None = None) -> Iterator[str]:
        """A split's texts in row order, read from its Parquet file a batch at a time."""
        return iter_texts(self.data_dir / f"{split}.parquet", limit)

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
            dataset.lengths, self.batch_size, self.bucket_batches, shuffle, self.seed, rank, world
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

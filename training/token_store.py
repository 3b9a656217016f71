"""Token ids stored once on disk and read lazily: one flat int32 file per split, memory-mapped.

preprocess encodes each split in batches and writes `tokens/<split>.ids.bin` (every text's ids end to end),
`<split>.offsets.npy` (where each text starts; n + 1 int64) and `<split>.labels.npy` (label indices), with
`tokens/meta.json` naming the label order and the tokenizer's sha256. Training, evaluation, the ensemble and
the checks map the file instead of holding every split as Python lists, so memory stays flat as the corpus
grows, and DDP ranks map the same file (the page cache is shared) instead of each holding a copy.

Arrow's list<int32> in a memory-mapped IPC file reads as fast (bench/token_store_bench.py: 106k vs 129k random
rows a second, both hundreds of times what training consumes); the flat map is kept because its reader needs
only numpy, a DataLoader worker or DDP rank reopens it from two paths, and lengths are one diff of the offsets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

META = "meta.json"
ID_DTYPE = np.int32


class TokenStoreError(FileNotFoundError):
    """The token store is missing or was made with another tokenizer."""


@dataclass(frozen=True)
class StoreMeta:
    labels: list[str]
    tokenizer_sha256: str
    splits: dict[str, int]

    @classmethod
    def read(cls, folder: Path) -> StoreMeta:
        path = folder / META
        if not path.is_file():
            raise TokenStoreError(f"{path} not found: the token store is made by preprocess; run `dvc repro "
                                  "preprocess` (or python -m pipelines.preprocess)")
        return cls(**json.loads(path.read_text()))

    def write(self, folder: Path) -> None:
        (folder / META).write_text(json.dumps(self.__dict__, ensure_ascii=False, indent=2) + "\n")


class SplitWriter:
    """Appends batches of (token ids, label index) to one split's files; close() writes offsets and labels."""

    def __init__(self, folder: Path, split: str) -> None:
        self.folder, self.split = folder, split
        folder.mkdir(parents=True, exist_ok=True)
        self._ids = (folder / f"{split}.ids.bin").open("wb")
        self._lengths: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def append(self, ids: Sequence[Sequence[int]], labels: Sequence[int]) -> None:
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((t for x in ids for t in x), dtype=ID_DTYPE, count=int(lengths.sum()))
        self._ids.write(flat.tobytes())
        self._lengths.append(lengths)
        self._labels.append(np.asarray(labels, dtype=np.int32))

    def close(self) -> int:
        self._ids.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.int64)
        np.save(self.folder / f"{self.split}.offsets.npy", np.concatenate([[0], np.cumsum(lengths)]))
        labels = np.concatenate(self._labels) if self._labels else np.zeros(0, dtype=np.int32)
        np.save(self.folder / f"{self.split}.labels.npy", labels)
        return len(lengths)


def write_split(folder: Path, split: str, batches: Iterable[tuple[Sequence[Sequence[int]], Sequence[int]]]) -> int:
    """Write one split from batches of (ids, labels); returns its number of texts."""
    writer = SplitWriter(folder, split)
    for ids, labels in batches:
        writer.append(ids, labels)
    return writer.close()


class RaggedIds(Sequence):
    """Texts' token ids as a read-only sequence over the memory map: ids[i] → list, ids[a:b] → list of lists."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray) -> None:
        self.flat, self.offsets = flat, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.flat[self.offsets[index]:self.offsets[index + 1]].tolist()


class TokenSplit(torch.utils.data.Dataset):
    """One split of the store: `ids` (lazy), `labels` (label indices), `lengths`; item i → (ids, label)."""

    def __init__(self, folder: Path, split: str) -> None:
        self.folder, self.split = Path(folder), split
        self._open()

    def _open(self) -> None:
        offsets = np.load(self.folder / f"{self.split}.offsets.npy")
        path = self.folder / f"{self.split}.ids.bin"
        # numpy can't map an empty file; a split of empty texts can't happen (encode gives [UNK]) but be safe
        flat = np.memmap(path, dtype=ID_DTYPE, mode="r") if offsets[-1] else np.zeros(0, dtype=ID_DTYPE)
        self.ids = RaggedIds(flat, offsets)
        self.labels = np.load(self.folder / f"{self.split}.labels.npy").astype(np.int64)
        self.lengths = np.diff(offsets)

    # A DataLoader worker or a spawned process gets the paths and maps the file itself, not a copy of it.
    def __getstate__(self) -> dict:
        return {"folder": self.folder, "split": self.split}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.ids[i], int(self.labels[i])


class StackedSplit(torch.utils.data.Dataset):
    """Splits one after another (the train split, then its sentence views), read through one index."""

    def __init__(self, parts: Sequence[TokenSplit]) -> None:
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])
        self.labels = np.concatenate([p.labels for p in self.parts])
        self.lengths = np.concatenate([p.lengths for p in self.parts])
        self.ids = _StackedIds(self)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, i: int) -> tuple[TokenSplit, int]:
        part = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.parts[part], i - int(self.starts[part])

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        part, j = self.locate(i)
        return part[j]


class _StackedIds(Sequence):
    def __init__(self, stacked: StackedSplit) -> None:
        self.stacked = stacked

    def __len__(self) -> int:
        return len(self.stacked)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        part, j = self.stacked.locate(index if index >= 0 else index + len(self))
        return part.ids[j]


def build_store(data_dir: Path, tokenizer_path: Path, labels: list[str], batch_rows: int = 50_000) -> dict[str, int]:
    """Encode each split's texts in batches into data_dir/tokens; returns the tokens stored per split."""
    import pyarrow.parquet as pq
    from tokenizers import Tokenizer

    from serving.contract import encode
    from training.tokenizer import file_sha256

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    folder, index, sizes, tokens = Path(data_dir) / "tokens", {label: i for i, label in enumerate(labels)}, {}, {}
    for split in ("train", "val", "test"):
        writer = SplitWriter(folder, split)
        for batch in pq.ParquetFile(Path(data_dir) / f"{split}.parquet").iter_batches(batch_size=batch_rows):
            texts, names = batch.column("text").to_pylist(), batch.column("label").to_pylist()
            unknown = set(names) - index.keys()
            if unknown:
                raise ValueError(f"{split} split has label(s) {sorted(unknown)} the train split lacks: "
                                 "re-run preprocess")
            writer.append(encode(tokenizer, texts), [index[n] for n in names])
        sizes[split] = writer.close()
        tokens[split] = int(np.load(folder / f"{split}.offsets.npy")[-1])
    StoreMeta(labels, file_sha256(tokenizer_path), sizes).write(folder)
    return tokens


def open_store(data_dir: Path, tokenizer_path: Path) -> tuple[StoreMeta, dict[str, TokenSplit]]:
    """The store preprocess made beside the splits, checked against the tokenizer the caller will use."""
    from training.tokenizer import file_sha256

    folder = Path(data_dir) / "tokens"
    meta = StoreMeta.read(folder)
    if meta.tokenizer_sha256 != file_sha256(tokenizer_path):
        raise TokenStoreError(f"{folder} was encoded with another tokenizer than {tokenizer_path}: re-run preprocess")
    return meta, {split: TokenSplit(folder, split) for split in meta.splits}

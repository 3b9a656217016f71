"""What training and serving agree on, written once: token ids, encode and pad, the bundle's files, `meta.json`,
and the `score_<label>` column names.

The exported bundle is the contract between the two sides (docs/design-notes.md): training writes it through
this module and serving reads it through this module. numpy and pydantic only, so it sits on the ground floor.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PAD, UNK, SEP = "[PAD]", "[UNK]", "[SEP]"
PAD_ID, UNK_ID, SEP_ID = 0, 1, 2  # [SEP] ends each text in the language model's token stream

MODEL_FILE, TOKENIZER_FILE, META_FILE = "model.onnx", "tokenizer.json", "meta.json"
BUNDLE_FILES = (MODEL_FILE, TOKENIZER_FILE, META_FILE)


class BundleError(RuntimeError):
    """The bundle directory is missing, incomplete or unreadable."""


def missing_files(bundle: Path) -> list[str]:
    return [name for name in BUNDLE_FILES if not (bundle / name).is_file()]


def is_complete(bundle: Path) -> bool:
    return not missing_files(bundle)


def require_complete(bundle: Path, fix: str = "export it again (dvc repro export)") -> None:
    """A `BundleError` naming the missing files and how to get them."""
    missing = missing_files(bundle)
    if missing:
        raise BundleError(f"bundle {bundle} lacks {', '.join(missing)}: {fix}")


class BundleMeta(BaseModel):
    """`meta.json`: labels in the model's output order, where the model came from, and its registry facts.

    Unknown keys are kept (extra="allow"), so a bundle written by a newer version reads and re-stamps whole."""

    model_config = ConfigDict(extra="allow", frozen=True)

    model_name: str
    version: str
    labels: tuple[str, ...]
    max_len: int = Field(gt=0)
    metrics: dict[str, Any] = Field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    data_hash: str | None = None
    git_commit: str | None = None
    created: str | None = None
    tokenizer_sha256: str | None = None
    # Stamped by export and rollback once the registry knows the model (pipelines/bundles.py).
    registered_model: str | None = None
    mlflow_run_id: str | None = None
    model_uri: str | None = None

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"must list at least two distinct labels, got {list(labels)}")
        return labels

    def stamped(self, **fields: str) -> BundleMeta:
        return self.model_validate({**self.model_dump(), **fields})


def read_meta(bundle: Path) -> BundleMeta:
    """`bundle/meta.json`; anything missing or malformed is a `BundleError` naming the file and the key."""
    path = bundle / META_FILE
    try:
        return BundleMeta.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except ValidationError as exc:
        error = exc.errors()[0]
        raise BundleError(f"cannot read {path}: '{'.'.join(map(str, error['loc']))}' {error['msg'].lower()}") from exc
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {path}: {exc!r}") from exc


def write_meta(bundle: Path, meta: BundleMeta) -> None:
    bundle.mkdir(parents=True, exist_ok=True)
    text = json.dumps(meta.model_dump(mode="json"), indent=2, ensure_ascii=False)
    (bundle / META_FILE).write_text(text + "\n", encoding="utf-8")


def encode(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids per text (a `tokenizers.Tokenizer`); a text with no token becomes [UNK], so no row is empty."""
    return [enc.ids or [UNK_ID] for enc in tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)]


def pad(ids: Sequence[Sequence[int]], width: int | None = None) -> np.ndarray:
    """Right-pad to the longest row (or `width`) with [PAD]: the models' `input_ids` [batch, seq] int64."""
    width = width or max(len(x) for x in ids)
    batch = np.full((len(ids), width), PAD_ID, dtype=np.int64)
    for row, x in enumerate(ids):
        batch[row, : len(x)] = x
    return batch


def score_column(label: str) -> str:
    """The column a label's probability goes in: batch scoring, the MLflow Model's signature, the review queue."""
    return f"score_{label}"


def score_columns(labels: Iterable[str]) -> list[str]:
    return [score_column(label) for label in labels]

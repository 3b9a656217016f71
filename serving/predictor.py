"""Score texts with the exported bundle: `tokenizer.json` + `model.onnx` + `meta.json`.

Imports only numpy, tokenizers and onnxruntime, never torch or `training/`, so the serving image stays small.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from serving.contract import (
    MODEL_FILE,
    TOKENIZER_FILE,
    BundleError,
    BundleMeta,
    encode,
    pad,
    read_meta,
    require_complete,
)

logger = logging.getLogger(__name__)
__all__ = ["BundleError", "BundleMeta", "OnnxPredictor", "score_rows"]


def _pick_providers(ort: Any) -> list[str]:
    # CUDAExecutionProvider is listed by onnxruntime-gpu even on machines without a usable GPU or CUDA
    # libraries; creating a session with it then logs a wall of errors, so only offer it when a GPU shows up.
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES") not in ("", "-1") and any(Path("/dev").glob("nvidia[0-9]*"))
    if gpu and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxPredictor:
    """Loads a bundle once; `predict` scores a list of texts, grouping them by length to keep padding small."""

    def __init__(self, bundle: str | os.PathLike[str], intra_op_threads: int = 1, group_size: int = 64):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.bundle = Path(bundle)
        require_complete(self.bundle)
        self.info: BundleMeta = read_meta(self.bundle)
        self.labels = self.info.labels
        self.group_size = group_size
        try:
            self.tokenizer = Tokenizer.from_file(str(self.bundle / TOKENIZER_FILE))
        except Exception as exc:  # tokenizers raises a bare Exception on a corrupt file
            raise BundleError(f"cannot read {self.bundle / TOKENIZER_FILE}: {exc}") from exc
        # The bundle's tokenizer must truncate, or a long text makes a huge tensor; enforce max_len here too.
        self.tokenizer.enable_truncation(self.info.max_len)
        self.tokenizer.no_padding()

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(intra_op_threads))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no provider-fallback warnings in the serving log
        self.providers = _pick_providers(ort)
        while True:
            try:
                self.session = ort.InferenceSession(str(self.bundle / MODEL_FILE), sess_options=options,
                                                    providers=self.providers)
                break
            except Exception as exc:
                if self.providers[0] == "CPUExecutionProvider":
                    raise BundleError(f"cannot load {self.bundle / MODEL_FILE}: {exc}") from exc
                # CUDA listed and a device present, but unusable (driver or library mismatch): fall back quietly.
                logger.info("CUDA provider unusable (%s); using CPU", exc)
                self.providers = ["CPUExecutionProvider"]
        self._check_io()

    def _check_io(self) -> None:
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != ["input_ids"] or "probabilities" not in outputs:
            raise BundleError(
                f"{self.bundle / MODEL_FILE} must take 'input_ids' and output 'probabilities', "
                f"has inputs {inputs} and outputs {outputs}"
            )
        meta_labels = self.session.get_modelmeta().custom_metadata_map.get("labels")
        if meta_labels is not None and tuple(json.loads(meta_labels)) != self.labels:
            raise BundleError(f"labels in {self.bundle / MODEL_FILE} differ from meta.json: {meta_labels}")

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, by the contract's `encode` (no row is empty)."""
        return encode(self.tokenizer, texts)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape [len(texts), len(labels)], rows in input order."""
        return self.probabilities_of_ids(self.encode(texts))

    def probabilities_of_ids(self, ids: list[list[int]]) -> np.ndarray:
        """Class probabilities of texts already encoded by `encode`."""
        out = np.empty((len(ids), len(self.labels)), dtype=np.float32)
        # Sort by length and cut into groups: each group pads only to its own longest text. The models are
        # padding-invariant, so this changes speed, never results.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self.group_size):
            rows = order[start : start + self.group_size]
            (probs,) = self.session.run(["probabilities"], {"input_ids": pad([ids[i] for i in rows])})
            out[rows] = probs
        return out

    def predict_with_ids(self, texts: Sequence[str]) -> tuple[list[dict[str, Any]], list[list[int]]]:
        """`predict`'s answers and each text's token ids (the prediction log counts tokens from them)."""
        ids = self.encode(texts)
        probs, labels = self.probabilities_of_ids(ids), self.labels
        return [{"label": labels[k], "score": row[k], "scores": dict(zip(labels, row, strict=True))}
                for k, row in zip(probs.argmax(axis=1).tolist(), probs.tolist(), strict=True)], ids


def score_rows(predictor: Any, values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [n, labels], NaN rows for bad values; mask of the rows that are not strings).

    Only string rows are scored: a missing or non-string text is passed through, never fails the batch."""
    bad = np.array([not isinstance(v, str) for v in values], dtype=bool)
    probs = np.full((len(values), len(predictor.labels)), np.nan, dtype=np.float32)
    good = np.flatnonzero(~bad)
    if len(good):
        probs[good] = predictor.probabilities([values[i] for i in good])
    return probs, bad

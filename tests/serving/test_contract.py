"""The contract module: the one place training and serving agree on ids, padding, the bundle and meta.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from serving.contract import (
    BUNDLE_FILES,
    PAD_ID,
    UNK_ID,
    BundleError,
    BundleMeta,
    encode,
    missing_files,
    pad,
    read_meta,
    require_complete,
    score_columns,
    write_meta,
)


def test_pad_right_pads_to_the_longest_row_or_a_width() -> None:
    batch = pad([[5, 6, 7], [8]])
    assert batch.dtype == np.int64 and batch.tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]]
    assert pad([[5]], width=3).tolist() == [[5, PAD_ID, PAD_ID]]


def test_encode_never_gives_an_empty_row(bundle: Path) -> None:
    tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    ids = encode(tokenizer, ["这本书很好看", "", "🙂"])
    assert ids[1] == [UNK_ID] and ids[2] == [UNK_ID] and len(ids[0]) > 1
    # The fast batch path gives the ids the offset-tracking one does.
    slow = [e.ids or [UNK_ID] for e in tokenizer.encode_batch(["这本书很好看", "", "🙂"], add_special_tokens=False)]
    assert ids == slow and encode(tokenizer, []) == []


def test_meta_round_trip_keeps_unknown_keys(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    raw = json.loads((copy / "meta.json").read_text())
    (copy / "meta.json").write_text(json.dumps({**raw, "from_a_newer_version": [1, 2]}))
    meta = read_meta(copy).stamped(version="7", registered_model="textclf")
    write_meta(copy, meta)
    again = json.loads((copy / "meta.json").read_text())
    assert again["version"] == "7" and again["registered_model"] == "textclf"
    assert again["from_a_newer_version"] == [1, 2] and again["labels"] == raw["labels"]


@pytest.mark.parametrize(("change", "named"), [({"labels": ["pos"]}, "labels"), ({"labels": ["a", "a"]}, "labels"),
                                               ({"max_len": 0}, "max_len"), ({"model_name": None}, "model_name")])
def test_a_bad_meta_names_the_file_and_key(bundle: Path, tmp_path: Path, change: dict, named: str) -> None:
    raw = {**json.loads((bundle / "meta.json").read_text()), **change}
    (tmp_path / "meta.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match=rf"meta\.json: '{named}'"):
        read_meta(tmp_path)


def test_completeness_names_what_is_missing(bundle: Path, tmp_path: Path) -> None:
    assert missing_files(bundle) == []
    (tmp_path / "meta.json").write_text("{}")
    assert missing_files(tmp_path) == ["model.onnx", "tokenizer.json"]
    with pytest.raises(BundleError, match=r"lacks model\.onnx, tokenizer\.json: run the export"):
        require_complete(tmp_path, "run the export stage first")
    assert BUNDLE_FILES == ("model.onnx", "tokenizer.json", "meta.json")


def test_score_columns_follow_label_order() -> None:
    assert score_columns(["neg", "pos"]) == ["score_neg", "score_pos"]
    meta = BundleMeta(model_name="m", version="1", labels=("neg", "pos"), max_len=8)
    assert score_columns(meta.labels) == ["score_neg", "score_pos"]

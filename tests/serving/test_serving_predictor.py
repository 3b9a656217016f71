"""The in-process ONNX predictor: parity with torch, padding invariance, bundle errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from serving.config import load_config
from serving.predictor import BundleError, OnnxPredictor

TEXTS = [
    "这本书很好看",
    "质量太差了，不会再买",
    "",
    "   ",
    "The book is great",
    "未登录词 zzzz qqqq",
    "🙂🙃 مرحبا بالعالم \u202e\u0000\u0007",
    "还行" * 500,  # longer than max_len: truncated, not rejected
]


def test_matches_the_torch_module(torch_model) -> None:
    module, path = torch_model
    predictor = OnnxPredictor(path)
    for text, ids in zip(TEXTS, predictor.encode(TEXTS), strict=True):
        with torch.no_grad():
            expected, _ = module(torch.tensor([ids]))
        np.testing.assert_allclose(predictor.probabilities([text])[0], expected.numpy()[0], atol=1e-5)


def test_batch_equals_one_by_one_and_keeps_order(predictor: OnnxPredictor) -> None:
    batch = predictor.probabilities(TEXTS)
    single = np.concatenate([predictor.probabilities([t]) for t in TEXTS])
    np.testing.assert_allclose(batch, single, atol=1e-6)
    reversed_batch = predictor.probabilities(TEXTS[::-1])
    np.testing.assert_allclose(reversed_batch[::-1], batch, atol=1e-6)


def test_small_groups_give_the_same_results(bundle: Path, predictor: OnnxPredictor) -> None:
    grouped = OnnxPredictor(bundle, group_size=2)
    np.testing.assert_allclose(grouped.probabilities(TEXTS), predictor.probabilities(TEXTS), atol=1e-6)


def test_prediction_shape(predictor: OnnxPredictor) -> None:
    results = predictor.predict_with_ids(["这本书很好看", ""])[0]
    assert len(results) == 2
    for result in results:
        assert set(result) == {"label", "score", "scores"}
        assert list(result["scores"]) == list(predictor.labels)
        assert result["score"] == max(result["scores"].values())
        assert result["label"] == max(result["scores"], key=result["scores"].get)
        assert sum(result["scores"].values()) == pytest.approx(1.0, abs=1e-5)


def test_empty_text_becomes_unk(predictor: OnnxPredictor) -> None:
    assert predictor.encode(["", "  "]) == [[1], [1]]
    assert len(predictor.encode(["还行" * 500])[0]) == predictor.info.max_len


def test_missing_bundle_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=str(tmp_path / "nothing")):
        OnnxPredictor(tmp_path / "nothing")


@pytest.mark.parametrize("broken", ["model.onnx", "tokenizer.json", "meta.json"])
def test_corrupt_file_names_the_file(bundle: Path, tmp_path: Path, broken: str) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    (copy / broken).write_bytes(b"\x00garbage")
    with pytest.raises(BundleError, match=broken):
        OnnxPredictor(copy)


def test_labels_must_agree(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["labels"] = meta["labels"][::-1]
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="labels"):
        OnnxPredictor(copy)


def test_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"TEXTCLF_MAX_TEXTS": "7", "TEXTCLF_API_TOKEN": "s3cret", "TEXTCLF_WORKERS": ""}.items():
        monkeypatch.setenv(name, value)
    config = load_config()
    assert config.max_texts == 7 and config.api_token == "s3cret" and config.workers == 2  # "" is the default
    monkeypatch.setenv("TEXTCLF_MAX_TEXTS", "zero")
    with pytest.raises(ValueError, match="TEXTCLF_MAX_TEXTS='zero' is invalid"):
        load_config()
    monkeypatch.setenv("TEXTCLF_MAX_TEXTS", "7")
    monkeypatch.setenv("TEXTCLF_MAX_BATCH_SIZE", "0")
    with pytest.raises(ValueError, match="TEXTCLF_MAX_BATCH_SIZE"):
        load_config()


def test_serving_never_imports_torch_or_training() -> None:
    serving = Path(__file__).resolve().parents[2] / "serving"
    for source in serving.glob("*.py"):
        text = source.read_text()
        assert "import torch" not in text and "from training" not in text and "import training" not in text, source

import json
import random

import onnxruntime as ort
import pytest
import torch

from serving.contract import pad
from training.calibration import Calibrated, calibrate, calibration_error, fit_temperature, reliability
from training.ensemble import AveragedProbabilities
from training.export import check_parity, export_onnx
from training.models import build_model


def _overconfident(n: int = 4000, true_t: float = 2.5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose labels are drawn from softmax(logits / true_t): the model is too sure by a factor true_t."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 3, generator=g) * 4
    target = torch.multinomial((logits / true_t).softmax(-1), 1, generator=g).squeeze(1)
    return logits, target


def test_the_fitted_temperature_recovers_the_true_one_and_lowers_the_error():
    logits, target = _overconfident()
    t = fit_temperature(logits, target)
    assert t == pytest.approx(2.5, rel=0.1)
    before, after = calibration_error(logits.softmax(-1), target), calibration_error((logits / t).softmax(-1), target)
    assert before > 0.1 and after < 0.03
    # An already calibrated model keeps T near 1.
    assert fit_temperature(logits / 2.5, target) == pytest.approx(1.0, rel=0.1)


def test_calibrate_fits_on_val_and_reports_both_splits():
    (val, val_y), (test, test_y) = _overconfident(seed=1), _overconfident(seed=2)
    model = torch.nn.Identity()
    calibrated, report = calibrate(model, {"val": val, "test": test}, {"val": val_y, "test": test_y})
    assert report["fitted_on"] == "val" and report["bins"] == 15
    assert report["temperature"] == fit_temperature(val, val_y) == calibrated.temperature
    assert report["test_ece"] < report["test_ece_uncalibrated"] and report["val_ece"] < 0.03
    assert torch.equal(calibrated(test).argmax(-1), test.argmax(-1))  # the same predictions
    with pytest.raises(ValueError, match="temperature must be positive"):
        Calibrated(model, 0.0)


def test_reliability_bins_count_every_row_and_match_torchmetrics():
    logits, target = _overconfident(n=1000)
    probs = logits.softmax(-1)
    rows = reliability(probs, target)
    assert len(rows) == 15 and sum(r["count"] for r in rows) == 1000
    ece = sum(r["count"] * abs(r["confidence"] - r["accuracy"]) for r in rows if r["count"]) / 1000
    assert ece == pytest.approx(calibration_error(probs, target), abs=2e-3)  # rows are rounded to 4 places


@pytest.mark.parametrize("ensemble", [False, True])
def test_the_temperature_lives_in_the_onnx_graph_with_parity(tmp_path, ensemble):
    torch.manual_seed(0)
    net = build_model("rcnn", 100, 2, embedding_dim=16, hidden_size=12, ngram_buckets=31).eval()
    if ensemble:
        net = AveragedProbabilities([net, build_model("bilstm", 100, 2, embedding_dim=8, hidden_size=8)]).eval()
    model = Calibrated(net, 0.37)
    path = tmp_path / "model.onnx"
    export_onnx(model, path, {"labels": json.dumps(["neg", "pos"])})
    rng = random.Random(0)
    ids = [[rng.randint(1, 99) for _ in range(rng.randint(1, 30))] for _ in range(200)]
    assert check_parity(model, path, ids, atol=1e-5)["max_abs_diff"] <= 1e-5
    batch = pad(ids[:16])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs, logits = session.run(None, {"input_ids": batch})
    with torch.inference_mode():
        raw = net(torch.from_numpy(batch)).float()
    torch.testing.assert_close(torch.from_numpy(probs), (raw / 0.37).softmax(-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.from_numpy(logits), raw / 0.37, atol=1e-5, rtol=1e-5)

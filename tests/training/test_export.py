import json
import random

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from serving.contract import pad
from training.checkpoints import CheckpointError, load_model
from training.export import ExportError, check_parity, export_onnx
from training.models import build_model

MAX_LEN = 40


def _random_ids(n: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randint(1, 99) for _ in range(rng.randint(1, MAX_LEN))] for _ in range(n)]


@pytest.mark.parametrize(("name", "config"), [("textrnn", {"cell": "gru", "num_layers": 2}),
                                              ("rcnn", {"cell": "lstm"}), ("bilstm", {}), ("textrnn", {"cell": "rnn"}),
                                              ("rcnn", {"recurrent_max_len": 8, "ngram_buckets": 31})])
def test_parity_over_random_lengths_and_batch_sizes(tmp_path, name, config):
    torch.manual_seed(0)
    model = build_model(name, 100, 3, embedding_dim=16, hidden_size=12, **config).eval()
    path = tmp_path / "model.onnx"
    export_onnx(model, path, {"labels": json.dumps(["a", "b", "c"]), "model_name": name})
    result = check_parity(model, path, _random_ids(400), atol=1e-5, max_batch=64)
    assert result["max_abs_diff"] <= 1e-5 and result["batches"] >= 8
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["labels"]) == ["a", "b", "c"] and meta["model_name"] == name


def test_onnx_io_contract_and_padding_invariance(tmp_path):
    torch.manual_seed(0)
    model = build_model("bilstm", 100, 2, embedding_dim=8, hidden_size=8).eval()
    export_onnx(model, tmp_path / "m.onnx", {})
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids"]
    assert [o.name for o in session.get_outputs()] == ["probabilities", "logits"]
    ids = _random_ids(5, seed=3)
    batched = session.run(["probabilities"], {"input_ids": pad(ids)})[0]
    alone = np.concatenate([session.run(["probabilities"], {"input_ids": pad([x])})[0] for x in ids])
    assert batched.dtype == np.float32 and np.allclose(batched.sum(1), 1.0, atol=1e-6)
    assert np.abs(batched - alone).max() <= 1e-6


def test_parity_failure_is_loud(tmp_path):
    torch.manual_seed(0)
    model = build_model("textrnn", 100, 2, embedding_dim=8, hidden_size=8).eval()
    export_onnx(model, tmp_path / "m.onnx", {})
    with torch.no_grad():
        model.head[-1].bias[0] += 1.0  # the ONNX file no longer matches the weights
    with pytest.raises(ExportError, match="differ by"):
        check_parity(model, tmp_path / "m.onnx", _random_ids(20))


def test_missing_or_corrupt_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "best.ckpt")
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="can't be read"):
        load_model(tmp_path / "bad.ckpt")


@pytest.mark.parametrize("name", ["textrnn", "rcnn", "bilstm"])
def test_ngram_path_exports_with_parity_down_to_one_token(tmp_path, name):
    torch.manual_seed(0)
    model = build_model(name, 100, 3, embedding_dim=8, hidden_size=8, ngram_buckets=101, ngram_order=3).eval()
    torch.nn.init.normal_(model.ngrams.weight.weight)  # zero at start: give it something to get wrong
    path = tmp_path / "model.onnx"
    export_onnx(model, path, {})
    ids = _random_ids(300) + [[5], [7], [5, 6], [9, 9]] * 8  # batches shorter than the n-gram order
    assert check_parity(model, path, ids, atol=1e-5, max_batch=8)["max_abs_diff"] <= 1e-5
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    single = session.run(["probabilities"], {"input_ids": np.array([[5]], dtype=np.int64)})[0]
    padded = session.run(["probabilities"], {"input_ids": np.array([[5, 0, 0, 0], [1, 2, 3, 4]], dtype=np.int64)})[0]
    np.testing.assert_allclose(single[0], padded[0], atol=1e-6)


def test_ensemble_exports_as_one_graph_with_parity_and_padding_invariance(tmp_path):
    """The ensemble candidate (rcnn + the TF-IDF model, as params.yaml's defaults) is one ONNX graph."""
    from training.ensemble import AveragedProbabilities

    torch.manual_seed(0)
    tfidf = build_model("tfidf", 100, 2, ngram_buckets=64, ngram_order=3)
    with torch.no_grad():  # fitted weights and idf, so the member says something
        tfidf.idf.uniform_(0.5, 2.0)
        tfidf.weight.weight.normal_()
    members = [build_model("rcnn", 100, 2, embedding_dim=8, hidden_size=8, ngram_buckets=31), tfidf]
    ensemble = AveragedProbabilities([m.eval() for m in members]).eval()
    export_onnx(ensemble, tmp_path / "ensemble.onnx", {})
    assert check_parity(ensemble, tmp_path / "ensemble.onnx", _random_ids(300), atol=1e-5)["max_abs_diff"] <= 1e-5
    session = ort.InferenceSession(str(tmp_path / "ensemble.onnx"), providers=["CPUExecutionProvider"])
    ids = _random_ids(6, seed=4)
    batched = session.run(["probabilities"], {"input_ids": pad(ids)})[0]
    alone = np.concatenate([session.run(["probabilities"], {"input_ids": pad([x])})[0] for x in ids])
    assert np.abs(batched - alone).max() <= 1e-6 and batched.std(0).max() > 1e-3  # not a constant answer

"""The stage entry points, run as a user runs them, on a tiny corpus."""

import json
import os
import subprocess
import sys

import pandas as pd
import yaml

from tests.conftest import REPO, tiny_params


def stage(workdir, *args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", *args], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=600)


def test_ingest_preprocess_train_evaluate(project_copy):
    """ingest, preprocess and pretrain ran in the session's project (as `dvc repro pretrain`); train and
    evaluate one model after them."""
    tiny_workdir = project_copy
    for args in (["pipelines.train", "--model", "rcnn"], ["pipelines.evaluate", "--model", "rcnn"]):
        done = stage(tiny_workdir, *args)
        assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tiny_workdir / "data/processed/report.json").read_text())
    assert report["rows_read"] == 120 and report["rows_kept"] + report["rows_dropped"] == 120
    assert sum(report["splits"].values()) == report["rows_kept"]
    metrics = json.loads((tiny_workdir / "metrics/rcnn.json").read_text())
    for split in ("val", "test"):
        assert {"accuracy", "macro_f1", "per_class", "confusion_matrix"} <= set(metrics[split])
    assert set(metrics["test"]["per_class"]) == {"pos", "neg"}
    confusion = pd.read_csv(tiny_workdir / "metrics/confusion/rcnn.csv")
    assert len(confusion) == report["splits"]["test"]
    curves = pd.read_csv(tiny_workdir / "metrics/curves/rcnn.csv")
    assert len(curves) >= 1 and "val_macro_f1" in curves
    record = json.loads((tiny_workdir / "metrics/checks/rcnn.json").read_text())  # what select reads
    run_id = json.loads((tiny_workdir / "models/rcnn/train.json").read_text())["mlflow_run_id"]
    assert record["mlflow_run_id"] == run_id and record["val"]["macro_f1"] == metrics["val"]["macro_f1"]
    assert record["checklist"] is None and record["passed"] is True  # no checklist for this dataset
    # lm_transfer: embedding (the default) uses the forward model's embedding only: no backward model is trained.
    import torch

    assert set(json.loads((tiny_workdir / "metrics/lm.json").read_text())) == {"enabled", "forward", "seconds"}
    assert "backward" not in torch.load(tiny_workdir / "models/lm/lm.pt", weights_only=False)
    assert metrics["calibration"]["temperature"] > 0 and record["calibration"]["bins"] == 15
    assert record["cost_ms_per_text"] > 0
    saved_logits_feed_the_ensemble(tiny_workdir, report["splits"], confusion)


def saved_logits_feed_the_ensemble(workdir, splits: dict, confusion: pd.DataFrame) -> None:
    """evaluate keeps the model's val and test logits under a key of its checkpoint and splits; the ensemble's
    average of saved outputs is exactly what the averaged model outputs."""
    import torch

    from pipelines.params import load_params
    from training.ensemble import AveragedProbabilities, load_member, mean_log_probs
    from training.evaluation import predict_logits
    from training.split_logits import held_out_digest, held_out_logits, load_logits, logits_key, save_logits
    from training.textdata import TextData

    checkpoint, data_dir, path = workdir / "models/rcnn/best.ckpt", workdir / "data/processed", \
        workdir / "metrics/logits/rcnn.npz"
    held = held_out_digest(data_dir)
    key = logits_key(checkpoint, held)
    saved = load_logits(path, key)
    assert saved is not None and {s: len(v) for s, v in saved.items()} == {"val": splits["val"], "test": splits["test"]}
    labels = json.loads((workdir / "metrics/rcnn.json").read_text())["labels"]
    assert [labels[i] for i in saved["test"].argmax(-1).tolist()] == confusion["predicted"].tolist()
    assert load_logits(path, "another checkpoint") is None  # a stale file is not read
    model, _ = load_member(workdir / "models/rcnn")
    tp = load_params(workdir / "params.yaml").train.trainer
    data = TextData(data_dir, data_dir / "tokenizer.json", tp.batch_size, seed=tp.seed)  # evaluate's batches
    with torch.no_grad():
        direct = predict_logits(AveragedProbabilities([model, model]).eval(), data, "val")
        assert torch.equal(mean_log_probs([saved["val"], saved["val"]]), direct)
        # read back, not predicted again: a file under the right key is returned as it is, whatever it holds
        marked = workdir / "metrics/logits/marked.npz"
        save_logits(marked, {s: v + 1 for s, v in saved.items()}, key)
        read = held_out_logits(model, checkpoint, data, marked, held)
        assert torch.equal(read["test"], saved["test"] + 1)
        missing = held_out_logits(model, checkpoint, data, workdir / "metrics/logits/none.npz", held)  # predicted
        assert torch.allclose(missing["val"], saved["val"], atol=1e-6)
        other = held_out_logits(model, workdir / "models/rcnn/train.json", data, marked, held)
        assert torch.allclose(other["val"], saved["val"], atol=1e-6)  # another checkpoint's key: predicted


def test_pretraining_turned_off_is_skipped_with_a_warning_and_training_starts_from_scratch(project_copy):
    from tests.pipelines.project import read_params, write_params

    tiny_workdir = project_copy  # ingest and preprocess already ran; its language model is now the stale one
    params = read_params(tiny_workdir)
    params["pretrain"]["enabled"] = False
    write_params(tiny_workdir, params)
    stale = tiny_workdir / "models/lm/lm.pt"  # from an earlier run with pretraining on
    stale.write_bytes(b"old language model")
    done = stage(tiny_workdir, "pipelines.pretrain")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pretrain.enabled is false" in done.stderr
    assert json.loads((tiny_workdir / "metrics/lm.json").read_text()) == {"enabled": False}
    assert not (tiny_workdir / "models/lm/lm.pt").exists() and (tiny_workdir / "models/lm/DISABLED").is_file()
    done = stage(tiny_workdir, "pipelines.train", "--model", "textrnn")  # init_from_lm is on: no LM, no error
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training from scratch" in done.stderr


def test_user_errors_are_one_line_without_traceback(tiny_workdir):
    (tiny_workdir / "params.yaml").write_text("data:\n  source: missing.csv\n")
    done = stage(tiny_workdir, "pipelines.ingest")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: data.source: missing.csv does not exist")
    (tiny_workdir / "params.yaml").write_text("train:\n  trainer:\n    max_epoch: 3\n")
    done = stage(tiny_workdir, "pipelines.train", "--model", "bilstm")
    assert done.returncode == 2 and "unknown key 'train.trainer.max_epoch'" in done.stderr


def test_evaluate_without_checkpoint_says_which(project_copy):
    done = stage(project_copy, "pipelines.evaluate", "--model", "textrnn")  # the splits exist, no model does
    assert done.returncode == 2 and "models/textrnn/best.ckpt not found" in done.stderr


def test_corpus_with_a_too_small_class_stops_with_message(tiny_workdir, tiny_csv):
    frame = pd.read_csv(tiny_csv)
    pd.concat([frame, pd.DataFrame({"text": ["唯一"], "label": ["rare"]})]).to_csv(tiny_csv, index=False)
    assert stage(tiny_workdir, "pipelines.ingest").returncode == 0
    done = stage(tiny_workdir, "pipelines.preprocess")
    assert done.returncode == 2 and "class 'rare' has 1 row(s)" in done.stderr


def test_tokenizer_kind_follows_the_language(tiny_workdir, tmp_path):
    """auto: one token per word for Chinese corpora, WordPiece subwords for the others (report.json says which)."""
    for args in (["pipelines.ingest"], ["pipelines.preprocess"]):
        assert stage(tiny_workdir, *args).returncode == 0
    report = json.loads((tiny_workdir / "data/processed/report.json").read_text())
    assert report["language"]["language"] == "zh"
    assert report["tokenizer"] == {"kind": "word", "lowercase": True, "train_texts": report["splits"]["train"]}
    english = tmp_path / "english"
    english.mkdir()
    words = {"pos": ["great", "love", "superb", "enjoyed"], "neg": ["awful", "boring", "refund", "broken"]}
    rows = [(f"the book was {w} and {v} {i}", label) for label, ws in words.items() for i in range(30)
            for w, v in [(ws[i % 4], ws[(i + 1) % 4])]]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(english / "corpus.csv", index=False)
    (english / "params.yaml").write_text(yaml.safe_dump(tiny_params(english / "corpus.csv")), encoding="utf-8")
    for args in (["pipelines.ingest"], ["pipelines.preprocess"]):
        done = stage(english, *args)
        assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((english / "data/processed/report.json").read_text())
    assert report["language"]["language"] == "other" and report["tokenizer"]["kind"] == "subword"

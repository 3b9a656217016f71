import json
import subprocess
import sys

import pytest
import torch

from pipelines.params import TrainerParams, parse_params
from tests.conftest import REPO, TINY_TRAIN
from training.checkpoints import CheckpointError, load_model
from training.datamodule import TextDataModule
from training.evaluation import predict_proba, score
from training.fit import fit_classifier
from training.module import TextClassifier
from training.textdata import BucketBatchSampler, Collate


def _data(processed_dir, batch_size=16, **kw):
    return TextDataModule(processed_dir, processed_dir / "tokenizer.json", batch_size, bucket_batches=4, **kw)


def _trainer(**overrides) -> TrainerParams:
    return TrainerParams(**{**TINY_TRAIN["trainer"], **overrides})


@pytest.mark.parametrize("name", ["textrnn", "rcnn", "bilstm"])
def test_two_batch_fit_of_each_model(processed_dir, tmp_path, name):
    data = _data(processed_dir)
    config = parse_params({"train": TINY_TRAIN}).train.model(name).model_dump()
    tp = _trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=2)
    result = fit_classifier(name, config, tp, data, tmp_path, progress_bar=False)
    assert result.best_checkpoint.is_file()
    assert len(result.history) == 1 and {"train_loss", "val_macro_f1"} <= set(result.history[0])
    assert 0.0 <= result.best_val_macro_f1 <= 1.0


def test_same_seed_twice_gives_same_metrics(processed_dir, tmp_path):
    config = {"embedding_dim": 16, "hidden_size": 16, "attention_size": 16}
    runs = [
        fit_classifier("bilstm", config, _trainer(max_epochs=2), _data(processed_dir), tmp_path / str(i),
                       progress_bar=False).history
        for i in range(2)
    ]
    assert runs[0] == runs[1]
    assert runs[0][-1]["train_loss"] < runs[0][0]["train_loss"] * 1.5


def test_load_model_without_lightning_is_the_trained_network(processed_dir, tmp_path):
    """What evaluate, ensemble and export load (load_model: no Lightning) is exactly the LightningModule's
    network, class weights and all; a missing or corrupt checkpoint is the same clear error."""
    data = _data(processed_dir)
    config = {"embedding_dim": 16, "hidden_size": 16, "attention_size": 16}
    result = fit_classifier("bilstm", config, _trainer(max_epochs=1, class_weights=True), data, tmp_path,
                            progress_bar=False)
    model, labels = load_model(result.best_checkpoint)
    module = TextClassifier.load_from_checkpoint(result.best_checkpoint, map_location="cpu", weights_only=False).eval()
    assert labels == data.labels == list(module.hparams.labels) and not model.training
    assert model.state_dict().keys() == module.model.state_dict().keys()
    assert all(torch.equal(v, module.model.state_dict()[k]) for k, v in model.state_dict().items())
    assert torch.equal(predict_proba(model, data, "test"), predict_proba(module, data, "test"))
    with pytest.raises(CheckpointError, match="not found: run the train stage"):
        load_model(tmp_path / "missing.ckpt")
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"can't be read .*retrain it"):
        load_model(tmp_path / "bad.ckpt")


def test_training_learns_the_tiny_task(processed_dir, tmp_path):
    data = _data(processed_dir)
    config = {"embedding_dim": 16, "hidden_size": 16, "fc_hidden": 16}
    result = fit_classifier("textrnn", config, _trainer(max_epochs=6, patience=6), data, tmp_path,
                            progress_bar=False)
    module, _ = load_model(result.best_checkpoint)
    preds, target = predict_proba(module, data, "test").argmax(-1), torch.tensor(data.datasets["test"].labels)
    assert score(preds, target, data.labels)["accuracy"] > 0.6  # three classes: chance is 0.33
    # Row order, not the length-bucketed loader's: row i's probabilities are those of text i alone.
    with torch.inference_mode():
        alone = torch.cat([module(torch.tensor([ids])).softmax(-1) for ids in data.datasets["test"].ids])
    assert torch.allclose(predict_proba(module, data, "test"), alone, atol=1e-5)


def test_bucketed_batches_cover_every_row_once_with_little_padding(processed_dir):
    data = _data(processed_dir, batch_size=8)
    lengths = [len(x) for x in data.datasets["train"].ids]
    sampler = BucketBatchSampler(lengths, 8, bucket_batches=4, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert batches != list(sampler)  # a new order each epoch
    padded = sum(8 * max(lengths[i] for i in b) for b in batches)
    unsorted = sum(8 * max(lengths[i] for i in range(s, min(s + 8, len(lengths))))
                   for s in range(0, len(lengths), 8))
    assert padded < unsorted
    shards = [list(BucketBatchSampler(lengths, 8, 4, True, 3, rank, 2)) for rank in (0, 1)]
    assert len(shards[0]) == len(shards[1]) and not set(map(tuple, shards[0])) & set(map(tuple, shards[1]))


def test_collate_pads_to_batch_longest_or_max_len():
    items = [([3, 4, 5], 1), ([6], 0)]
    ids, labels = Collate()(items)
    assert ids.tolist() == [[3, 4, 5], [6, 0, 0]] and labels.tolist() == [1, 0]
    assert Collate(pad_to=5)(items)[0].shape == (2, 5)


def test_class_weights_are_inverse_frequency(processed_dir, tmp_path):
    data = _data(processed_dir)
    tp = _trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1, class_weights=True)
    result = fit_classifier("bilstm", {"embedding_dim": 8, "hidden_size": 8, "attention_size": 8}, tp, data,
                            tmp_path, progress_bar=False)
    weight = result.trainer.lightning_module.loss.weight
    counts = torch.tensor(data.class_counts(), dtype=torch.float)
    assert torch.allclose(weight, counts.sum() / (len(counts) * counts))


def test_the_train_stage_under_two_process_ddp_on_cpu(processed_dir, tmp_path):
    """`python -m pipelines.train` with devices 2, strategy ddp on CPU (gloo): Lightning starts the module again
    as rank 1, which builds its own data and trains its half; rank 0 alone writes the outputs and the MLflow run."""
    import pandas as pd
    import yaml
    from mlflow import MlflowClient

    from tests.conftest import tiny_params
    from training.textdata import TextData

    rows = len(pd.read_parquet(processed_dir / "train.parquet"))
    batch_size = next(b for b in (8, 6, 12, 10) if -(-rows // b) % 2 == 0)  # an even batch count: none left over
    trainer = {**TINY_TRAIN["trainer"], "accelerator": "cpu", "devices": 2, "strategy": "ddp", "max_epochs": 1,
               "batch_size": batch_size, "init_from_lm": False, "num_threads": 1}
    params = parse_params(tiny_params("corpus.csv", train={"trainer": trainer}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")), encoding="utf-8")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.train", "--model", "textrnn", "--data", str(processed_dir)],
        cwd=tmp_path, env={**_env(), "MLFLOW_TRACKING_URI": store}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # Both processes ran the stage; only rank 0 got past training.
    assert "rank 0 of 2: trained on" in done.stderr and "rank 1 of 2: trained on" in done.stderr
    assert done.stderr.count("train textrnn: best val macro-F1") == 1
    out = tmp_path / "models/textrnn"
    assert sorted(p.name for p in out.iterdir()) == ["best.ckpt", "train.json"]
    budget = json.loads((out / "train.json").read_text())["budget"]
    assert budget["world_size"] == 2 and budget["train_rows"] == rows
    # Each rank trained on its own half of the batches: the same number each, every row read once, none twice.
    ranks = budget["ranks"]
    assert [r["batches"] for r in ranks] == [budget["batches_per_epoch"]] * 2 == [-(-rows // batch_size) // 2] * 2
    assert sum(r["texts"] for r in ranks) == budget["texts_seen"] == budget["distinct_texts_seen"] == rows
    runs = MlflowClient(store).search_runs([e.experiment_id for e in MlflowClient(store).search_experiments()])
    assert len(runs) == 1 and runs[0].data.params["budget.stopped_by"] == "epochs"
    assert runs[0].data.metrics["budget_texts_seen"] == rows
    model, labels = load_model(out / "best.ckpt")
    data = TextData(processed_dir, processed_dir / "tokenizer.json", batch_size)
    probs = predict_proba(model, data, "test")
    assert labels == data.labels and probs.shape == (len(data.datasets["test"]), 3)
    assert torch.allclose(probs.sum(-1), torch.ones(len(probs)))
    # evaluate reads the DDP-trained checkpoint and carries the budget into the model's metrics.
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.evaluate", "--model", "textrnn", "--data", str(processed_dir)],
        cwd=tmp_path, env={**_env(), "MLFLOW_TRACKING_URI": store}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    training = json.loads((tmp_path / "metrics/textrnn.json").read_text())["training"]
    assert training["world_size"] == 2 and training["texts_seen"] == rows and training["stopped_by"] == "epochs"
    assert "ranks" not in training and training["epochs"] == 1


def _env():
    import os

    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_gradual_unfreezing_keeps_pretrained_layers_fixed_for_the_first_epoch(processed_dir, tmp_path):
    from training.lm import LanguageModel
    from training.tokenizer import file_sha256

    data = _data(processed_dir)
    torch.manual_seed(1)
    lm = {"forward": LanguageModel(data.vocab_size, 16, 16).state_dict(),
          "backward": LanguageModel(data.vocab_size, 16, 16).state_dict(),
          "tokenizer_sha256": file_sha256(processed_dir / "tokenizer.json"), "config": {"num_layers": 1}}
    config = {"embedding_dim": 16, "hidden_size": 16, "attention_size": 16}
    frozen = {"freeze_pretrained_epochs": 1, "lm_transfer": "all"}  # the LSTM layers too, to watch them
    one = fit_classifier("bilstm", config, _trainer(max_epochs=1, **frozen), data, tmp_path / "a",
                         progress_bar=False, lm_bundle=lm)
    weights = one.trainer.lightning_module.model.state_dict()
    assert torch.equal(weights["embedding.weight"], lm["forward"]["embedding.weight"])
    assert torch.equal(weights["encoder.backward_layers.0.weight_hh_l0"], lm["backward"]["layers.0.weight_hh_l0"])
    two = fit_classifier("bilstm", config, _trainer(max_epochs=2, **frozen), data, tmp_path / "b",
                         progress_bar=False, lm_bundle=lm)
    assert not torch.equal(two.trainer.lightning_module.model.state_dict()["embedding.weight"],
                           lm["forward"]["embedding.weight"])


def test_label_smoothing_and_swa_switched_on_through_params(processed_dir, tmp_path):
    params = parse_params({"train": {**TINY_TRAIN, "trainer": {**TINY_TRAIN["trainer"], "label_smoothing": 0.1,
                                                               "swa_epoch_start": 1, "max_epochs": 3}}})
    tp = params.train.trainer
    config = params.train.model("bilstm").model_dump()
    result = fit_classifier("bilstm", config, tp, _data(processed_dir), tmp_path, progress_bar=False)
    assert result.trainer.lightning_module.loss.label_smoothing == 0.1
    names = {type(c).__name__ for c in result.trainer.callbacks}
    assert "StochasticWeightAveraging" in names and "EarlyStopping" not in names
    assert len(result.history) == 3  # SWA runs to the last epoch
    assert result.best_val_macro_f1 >= max(row["val_macro_f1"] for row in result.history) - 1e-6  # rows are rounded


def test_stopping_before_the_schedule_ends_follows_the_longer_run_exactly(processed_dir, tmp_path):
    """max_epochs 1 of a 2-epoch schedule is the first epoch of the 2-epoch run, to the last digit."""
    config = parse_params({"train": TINY_TRAIN}).train.model("rcnn").model_dump()
    runs = {}
    for name, overrides in {"two": {"max_epochs": 2}, "first-of-two": {"max_epochs": 1, "schedule_epochs": 2},
                            "one": {"max_epochs": 1}}.items():
        tp = _trainer(limit_train_batches=3, limit_val_batches=2, **overrides)
        runs[name] = fit_classifier("rcnn", config, tp, _data(processed_dir), tmp_path / name, progress_bar=False)
    assert runs["first-of-two"].history == runs["two"].history[:1]
    lr = {n: r.trainer.lr_scheduler_configs[0].scheduler.get_last_lr()[0] for n, r in runs.items()}
    assert lr["first-of-two"] > lr["one"]  # the one-epoch schedule decayed to its end; the other is half-way

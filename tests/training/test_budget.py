"""The training budget: texts per epoch, max_time, and what a run reports it read."""

import time

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from pipelines.params import ParamsError, TrainerParams, parse_params
from tests.conftest import TINY_TRAIN
from training.budget import AUTO_TEXTS_PER_EPOCH, batches_per_rank, resolve_texts_per_epoch
from training.checkpoints import load_model
from training.datamodule import TextDataModule
from training.fit import fit_classifier

RCNN = {"embedding_dim": 16, "hidden_size": 16, "projection_size": 16}


def _data(processed_dir, batch_size=16):
    return TextDataModule(processed_dir, processed_dir / "tokenizer.json", batch_size, bucket_batches=4)


def _trainer(**overrides) -> TrainerParams:
    return TrainerParams(**{**TINY_TRAIN["trainer"], **overrides})


def _fit(processed_dir, path, **overrides):
    return fit_classifier("rcnn", RCNN, _trainer(**overrides), _data(processed_dir), path, progress_bar=False)


def test_auto_caps_only_big_splits_and_an_explicit_batch_limit_wins():
    assert resolve_texts_per_epoch("auto", 14_000) is None  # the built-in corpus: full epochs, as before
    assert resolve_texts_per_epoch("auto", 2_000_000) == AUTO_TEXTS_PER_EPOCH
    assert resolve_texts_per_epoch("auto", 2_000_000, limit_train_batches=10) is None
    assert resolve_texts_per_epoch(None, 2_000_000) is None and resolve_texts_per_epoch(500, 100) == 500
    assert resolve_texts_per_epoch("auto", 2_000_000, cpu=False) is None  # GPUs train full epochs
    assert batches_per_rank(200_000, 64, 1) == 3125 and batches_per_rank(200_000, 64, 2) == 1563
    assert batches_per_rank(1, 64, 2) == 1


def test_budget_params_are_checked_with_the_fix_in_the_message():
    with pytest.raises(ParamsError, match=r"'train\.trainer\.max_time'.*DD:HH:MM:SS"):
        parse_params({"train": {"trainer": {"max_time": "2h"}}})
    with pytest.raises(ParamsError, match=rf"'train\.trainer\.texts_per_epoch'.*up to {AUTO_TEXTS_PER_EPOCH} "):
        parse_params({"train": {"trainer": {"texts_per_epoch": 0}}})
    with pytest.raises(ParamsError, match=r"'train\.trainer'.*both cap an epoch"):
        parse_params({"train": {"trainer": {"texts_per_epoch": 100, "limit_train_batches": 5}}})
    trainer = parse_params({"train": {"trainer": {"texts_per_epoch": None, "max_time": "00:01:30:00"}}}).train.trainer
    assert trainer.texts_per_epoch is None and trainer.max_time == "00:01:30:00"


def test_auto_on_a_small_split_trains_bit_for_bit_as_full_epochs(processed_dir, tmp_path):
    """auto, null and a cap above the split's size: the same run, to the last digit of every weight."""
    runs = {str(s): _fit(processed_dir, tmp_path / str(s), max_epochs=2, texts_per_epoch=s)
            for s in ("auto", None, 10_000)}
    histories = [r.history for r in runs.values()]
    assert histories[0] == histories[1] == histories[2]
    weights = [torch.load(r.best_checkpoint, weights_only=False)["state_dict"] for r in runs.values()]
    assert all(torch.equal(weights[0][k], w[k]) for w in weights[1:] for k in weights[0])
    budget = runs["auto"].budget
    assert budget["texts_per_epoch"] is None and budget["texts_per_epoch_setting"] == "auto"
    assert budget["texts_seen"] == 2 * budget["train_rows"] == 2 * budget["distinct_texts_seen"]
    assert budget["stopped_by"] == "epochs" and budget["epochs_run"] == 2 and budget["texts_per_second"] > 0


def test_a_text_cap_reads_a_new_subset_each_epoch_and_the_schedule_ends_with_it(processed_dir, tmp_path):
    result = _fit(processed_dir, tmp_path, max_epochs=3, patience=3, texts_per_epoch=40)
    budget = result.budget
    assert budget["texts_per_epoch"] == 40 and budget["batches_per_epoch"] == 3  # ceil(40 / 16)
    assert budget["ranks"] == [{"rank": 0, "batches": 9, "texts": budget["texts_seen"]}]
    assert budget["texts_seen"] <= 3 * 48 < budget["train_rows"] * 3
    # One fixed subset would be at most 48 distinct rows: the reshuffled epochs read others.
    assert budget["distinct_texts_seen"] > 48
    scheduler = result.trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.lr_lambdas[0].keywords["total"] == 9  # the budgeted steps, not 3 full epochs' 27
    assert scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)  # the cosine ran to its end


class SlowSteps(Callback):
    """Real wall time per train step, so a one-second limit falls inside the first epoch on any machine."""

    def on_train_batch_end(self, *args) -> None:
        time.sleep(0.3)


def test_max_time_stops_mid_epoch_and_leaves_a_checkpoint_chosen_on_validation(processed_dir, tmp_path):
    """A one-second limit stops the first epoch (9 steps, 2.7 s) part-way, before its end-of-epoch validation;
    Lightning validates before it stops, so the checkpoint is still the validated one."""
    tp = _trainer(max_epochs=3, max_time="00:00:00:01")
    result = fit_classifier("rcnn", RCNN, tp, _data(processed_dir), tmp_path, progress_bar=False,
                            extra_callbacks=[SlowSteps()])
    budget = result.budget
    assert budget["stopped_by"] == "max_time" and budget["max_time"] == "00:00:00:01"
    assert budget["epochs_run"] == 1 and 1 <= budget["ranks"][0]["batches"] < budget["batches_per_epoch"] == 9
    assert len(result.history) == 1 and "val_macro_f1" in result.history[0]
    assert result.best_checkpoint.is_file()
    assert result.best_val_macro_f1 == pytest.approx(result.history[0]["val_macro_f1"], abs=1e-6)
    model, labels = load_model(result.best_checkpoint)
    assert labels == ["mid", "neg", "pos"] and model(torch.tensor([[5, 6, 7]])).shape == (1, 3)
    with pytest.raises(ParamsError, match=r"'train\.trainer\.max_time'.*zero duration trains nothing"):
        parse_params({"train": {"trainer": {"max_time": "00:00:00:00"}}})


def test_early_stopping_is_reported_as_the_reason(processed_dir, tmp_path):
    # A learning rate too small to move the weights: val macro-F1 stays level, so patience 1 ends epoch 2.
    result = _fit(processed_dir, tmp_path, max_epochs=4, patience=1, lr=1e-12)
    assert result.budget["stopped_by"] == "early_stopping" and result.budget["epochs_run"] == 2

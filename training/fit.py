"""One training run: Trainer with early stopping on val macro-F1, best checkpoint, per-epoch history."""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    StochasticWeightAveraging,
)

from training.budget import BudgetLedger, batches_per_rank, on_cpu, resolve_texts_per_epoch
from training.datamodule import TextDataModule
from training.module import TextClassifier
from training.precision import resolve_precision
from training.tfidf import fit_tfidf_lr
from training.tokenizer import file_sha256

log = logging.getLogger("textclf.fit")

MONITOR = "val_macro_f1"
CURVE_KEYS = ("train_loss", "val_loss", "train_acc", "val_acc", "train_macro_f1", "val_macro_f1")


class EpochHistory(Callback):
    """Keeps each epoch's seconds and train and val metrics (Lightning runs validation before on_train_epoch_end)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.seconds.append(time.perf_counter() - self._start)
        metrics = trainer.callback_metrics
        self.rows.append({"epoch": trainer.current_epoch,
                          **{k: round(float(metrics[k]), 6) for k in CURVE_KEYS if k in metrics}})


def write_curves(rows: list[dict[str, float]], path: Path) -> None:
    """Per-epoch metrics as CSV, the shape `dvc plots` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["epoch", *CURVE_KEYS], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


@dataclass
class FitResult:
    best_checkpoint: Path
    best_val_macro_f1: float
    history: list[dict[str, float]]
    epoch_seconds: list[float] = field(default_factory=list)
    trainer: L.Trainer | None = None
    details: dict[str, Any] = field(default_factory=dict)  # what a fit chose beyond params (tfidf: C)
    budget: dict[str, Any] = field(default_factory=dict)  # what the run read and why it stopped (training/budget.py)


class FreezePretrained(Callback):
    """Gradual unfreezing: the LM-initialised layers stay fixed while the new head settles, then all train.

    requires_grad is toggled rather than the optimizer rebuilt: AdamW skips parameters without gradients,
    so the learning-rate schedule and its parameter groups stay as they are.
    """

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        names = {f"model.{n}" for n in module.pretrained_params}
        for name, param in module.named_parameters():
            if name in names:
                param.requires_grad_(trainer.current_epoch >= self.epochs)


def fit_classifier(
    model_name: str, model_config: dict[str, Any], trainer_params: Any, data: TextDataModule,
    checkpoint_dir: Path, loggers: list | bool = False, progress_bar: bool = True, lm_bundle: dict | None = None,
    extra_callbacks: list[Callback] | None = None,
) -> FitResult:
    """Seeded, deterministic fit of one model; the best checkpoint by val macro-F1 lands in checkpoint_dir."""
    tp = trainer_params
    L.seed_everything(tp.seed, workers=True, verbose=False)
    if tp.num_threads:
        torch.set_num_threads(tp.num_threads)
    weights = None
    if tp.class_weights:
        counts = data.class_counts()
        weights = [sum(counts) / (len(counts) * max(c, 1)) for c in counts]
    module = TextClassifier(model_name, model_config, data.vocab_size, data.labels, tp.lr,
                            tp.weight_decay, tp.warmup_ratio, weights, tp.label_smoothing, tp.ngram_lr_scale,
                            tp.adversarial, tp.adversarial_epsilon, tp.adversarial_weight, tp.schedule_epochs)
    if lm_bundle is not None:
        loaded = module.init_from_language_model(lm_bundle, file_sha256(data.tokenizer_path),
                                                 tp.pretrained_lr_scale, tp.lm_transfer)
        log.info("%s: %d tensors initialised from the language model", model_name, len(loaded))
    history = EpochHistory()
    cap = resolve_texts_per_epoch(tp.texts_per_epoch, len(data.datasets["train"]), tp.limit_train_batches,
                                  cpu=on_cpu(tp.accelerator))
    ledger = BudgetLedger(cap, tp.max_time, tp.texts_per_epoch)
    callbacks: list[Callback] = [history, ledger, *(extra_callbacks or [])]
    if lm_bundle is not None and tp.freeze_pretrained_epochs:
        callbacks.append(FreezePretrained(tp.freeze_pretrained_epochs))
    if loggers:
        callbacks.append(LearningRateMonitor("epoch"))
    if tp.swa_epoch_start:
        callbacks.append(StochasticWeightAveraging(swa_lrs=tp.swa_lr, swa_epoch_start=tp.swa_epoch_start))
    # SWA averages up to the last epoch: early stopping would end the run before the average is taken.
    stopping = [] if tp.swa_epoch_start else [EarlyStopping(MONITOR, mode="max", patience=tp.patience)]
    trainer = L.Trainer(
        max_epochs=tp.max_epochs, accelerator=tp.accelerator, devices=tp.devices, strategy=tp.strategy,
        precision=resolve_precision(tp.precision, tp.accelerator), gradient_clip_val=tp.gradient_clip_val or None,
        deterministic=tp.deterministic, logger=loggers, enable_progress_bar=progress_bar, max_time=tp.max_time,
        limit_train_batches=tp.limit_train_batches, limit_val_batches=tp.limit_val_batches,
        use_distributed_sampler=False,  # the bucket sampler shards by rank itself
        enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=10,
        callbacks=[
            *stopping,
            # Weights only: nothing resumes a run, and evaluate, export and MLflow need only the model.
            ModelCheckpoint(dirpath=checkpoint_dir, filename="best", monitor=MONITOR, mode="max",
                            save_top_k=1, enable_version_counter=False, save_weights_only=True),
            *callbacks,
        ],
    )
    if cap is not None:
        # Set after construction: the batch count per process needs the world size the Trainer resolved
        # (devices: auto). fit reads it from here, and so does the LR schedule (estimated_stepping_batches).
        trainer.limit_train_batches = batches_per_rank(cap, tp.batch_size, trainer.world_size)
    trainer.fit(module, datamodule=data)
    checkpoint = trainer.checkpoint_callback
    if not checkpoint.best_model_path:  # no validation ran, so nothing was chosen: say which knob did it
        raise ValueError(f"{model_name}: training ended before any validation, so there is no best checkpoint; "
                         "raise train.trainer.max_time or limit_train_batches / texts_per_epoch")
    best = float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else float("nan")
    if tp.swa_epoch_start:
        best = keep_better_average(trainer, module, data, Path(checkpoint.best_model_path), best)
    return FitResult(Path(checkpoint.best_model_path), best, history.rows, history.seconds, trainer,
                     budget=ledger.summary)


TFIDF_SOLVER_KEYS = ("solver", "in_memory_max_texts", "chunk_texts", "sgd_epochs")


def fit_tfidf(config: dict[str, Any], data: TextDataModule, checkpoint_dir: Path, seed: int = 42) -> FitResult:
    """The TF-IDF n-gram logistic regression, fitted by scikit-learn and saved as a checkpoint like the others.

    config is train.tfidf's section: ngram_buckets and ngram_order build the model, c_grid, min_df and the
    solver keys steer the fit (a solver key left out takes fit_tfidf_lr's default); seed orders sgd's chunks.
    The checkpoint is a Lightning one, so evaluate, check, the ensemble and export load it as usual.
    """
    build = {k: config[k] for k in ("ngram_buckets", "ngram_order")}
    module = TextClassifier("tfidf", build, data.vocab_size, data.labels)
    start = time.perf_counter()
    splits = {s: (data.datasets[s].ids, data.datasets[s].labels) for s in ("train", "val")}
    solver = {k: config[k] for k in TFIDF_SOLVER_KEYS if k in config}
    result = fit_tfidf_lr(module.model, splits["train"], splits["val"], config["c_grid"], config["min_df"],
                          seed=seed, **solver)
    seconds = time.perf_counter() - start
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    path = checkpoint_dir / "best.ckpt"
    ran = {"solver": result.solver, "epochs": result.epochs, "chunk_texts": result.chunk_texts}
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": L.__version__, "epoch": 0, "global_step": 0,
                "tfidf": {"C": result.c, "grid": result.grid, "features": result.features, **ran}}, path)
    log.info("tfidf: %s, C=%g, %d n-gram features, val macro-F1 %.4f", result.solver, result.c, result.features,
             result.val_macro_f1)
    row = {"epoch": 0, "val_acc": round(result.val_accuracy, 6), "val_macro_f1": round(result.val_macro_f1, 6)}
    details = {"C": result.c, "features": result.features, **ran,
               **{f"val_macro_f1_at_C_{c:g}": round(f1, 6) for c, f1 in result.grid.items()}}
    rows = len(data.datasets["train"])
    # scikit-learn reads every train text once, whatever the budget: reported in the same shape as the others.
    budget = {"texts_per_epoch": None, "texts_per_epoch_setting": None, "max_time": None, "train_rows": rows,
              "batches_per_epoch": 1, "epochs_run": 1, "stopped_by": "epochs", "texts_seen": rows,
              "distinct_texts_seen": rows, "train_seconds": round(seconds, 2),
              "texts_per_second": round(rows / seconds, 1) if seconds else None, "world_size": 1,
              "ranks": [{"rank": 0, "batches": 1, "texts": rows}]}
    return FitResult(path, result.val_macro_f1, [row], [seconds], details=details, budget=budget)


def fit_model(name: str, config: dict[str, Any], trainer_params: Any, data: TextDataModule, checkpoint_dir: Path,
              loggers: list | bool = False, progress_bar: bool = True, lm_bundle: dict | None = None) -> FitResult:
    """Any model by name: tfidf by scikit-learn (no language model), the recurrent ones by Lightning."""
    if name == "tfidf":
        return fit_tfidf(config, data, checkpoint_dir, trainer_params.seed if trainer_params is not None else 42)
    return fit_classifier(name, config, trainer_params, data, checkpoint_dir, loggers, progress_bar, lm_bundle)


def keep_better_average(trainer: L.Trainer, module: TextClassifier, data: TextDataModule, path: Path,
                        best: float) -> float:
    """After SWA the module holds the averaged weights: they replace the best checkpoint if val says so."""
    averaged = float(trainer.validate(module, datamodule=data, verbose=False)[0][MONITOR])
    log.info("SWA: averaged weights val macro-F1 %.4f, best single epoch %.4f", averaged, best)
    if averaged >= best:
        trainer.save_checkpoint(path)
        return averaged
    return best

"""Stage train: fit one model (`--model`) and keep its best checkpoint and per-epoch curves."""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only

from pipelines.cli import parser, run
from pipelines.params import MODEL_NAMES, Params, load_params
from training.datamodule import TextDataModule
from training.fit import FitResult, fit_model, write_curves
from training.jsonio import write_json
from training.tracking import experiment_name, flatten, log_splits, open_experiment, run_tags, tracking_uri
from training.transfer import load_lm_bundle

log = logging.getLogger("textclf.train")


def mlflow_logger(model: str, params: Params, data_dir: Path) -> MLFlowLogger:
    """A run in the dataset's experiment, tagged with commit, data hash and model, with every param."""
    name = experiment_name(params.data.source)
    open_experiment(name)
    logger = MLFlowLogger(experiment_name=name, tracking_uri=tracking_uri(), run_name=model,
                          tags=run_tags(model, data_dir))
    relevant = {"data": params.data.model_dump(), "preprocess": params.preprocess.model_dump(),
                "train": {"trainer": params.train.trainer.model_dump(), model: params.train.model(model).model_dump()}}
    logger.log_hyperparams(flatten(relevant))
    log_splits(logger.experiment, logger.run_id, data_dir)
    return logger


def log_budget(logger: MLFlowLogger, budget: dict) -> None:
    """The budget on the run: what was asked and why it stopped as params, what was read as metrics."""
    logger.log_hyperparams({f"budget.{k}": budget[k] for k in ("texts_per_epoch", "max_time", "stopped_by")})
    numbers = {f"budget_{k}": budget[k] for k in ("epochs_run", "texts_seen", "distinct_texts_seen", "train_seconds")}
    numbers["train_texts_per_second"] = budget["texts_per_second"]
    logger.log_metrics({k: v for k, v in numbers.items() if v is not None})


def language_model(model: str, params: Params, lm_dir: Path) -> dict | None:
    """The pretrain stage's language models when this model starts from them, else None."""
    if not params.train.trainer.init_from_lm or model == "tfidf":  # tfidf has no embedding to initialise
        return None
    if not params.pretrain.enabled:
        log.info("train: pretrain.enabled is false, so no language model: training from scratch")
        return None
    return load_lm_bundle(lm_dir / "lm.pt")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--model", required=True, choices=MODEL_NAMES)
    p.add_argument("--data", default="data/processed", help="preprocess's output folder")
    p.add_argument("--out", default="models", help="checkpoints go to OUT/<model>/")
    p.add_argument("--metrics", default="metrics", help="curves go to METRICS/curves/<model>.csv")
    p.add_argument("--lm", default="models/lm", help="the pretrain stage's output folder")
    args = p.parse_args()
    all_params = load_params(args.params)
    tp, model_params = all_params.train.trainer, all_params.train.model(args.model)
    # Each process builds its own data: under DDP (subprocess launcher) Lightning runs this module again per rank.
    data = TextDataModule(args.data, Path(args.data) / "tokenizer.json", tp.batch_size,
                          tp.bucket_batches, tp.pad_to_max_len, tp.seed, tp.sentence_views)
    out = Path(args.out) / args.model
    lm_bundle = language_model(args.model, all_params, Path(args.lm))
    if rank_zero_only.rank != 0:
        # A further DDP rank (LOCAL_RANK set by the launcher): it trains its share of the batches and leaves the
        # MLflow run and every output to rank 0, so the store sees one run and one writer.
        fit_model(args.model, model_params.model_dump(), tp, data, out, progress_bar=False, lm_bundle=lm_bundle)
        return
    logger = mlflow_logger(args.model, all_params, Path(args.data))
    logger.log_hyperparams({"initialised_from_lm": lm_bundle is not None})
    result = fit_model(args.model, model_params.model_dump(), tp, data, out, loggers=[logger], lm_bundle=lm_bundle)
    log_budget(logger, result.budget)
    if result.trainer is None:  # scikit-learn fitted it: no Lightning loop logged its scores or ended the run
        logger.log_metrics({k: v for k, v in result.history[-1].items() if k != "epoch"}, step=0)
        logger.log_hyperparams({f"fit.{k}": v for k, v in result.details.items()})
        logger.finalize("success")
    write_outputs(args.model, result, logger, out, Path(args.metrics), Path(args.data))


def write_outputs(model: str, result: FitResult, logger: MLFlowLogger, out: Path, metrics: Path,
                  data_dir: Path) -> None:
    """Rank 0's part after fit (the checkpoint is already on disk: Lightning saved it inside fit): curves,
    train.json, and the checkpoint, tokenizer and curves as the run's artifacts."""
    curves = metrics / "curves" / f"{model}.csv"
    write_curves(result.history, curves)
    write_json(out / "train.json", {
        "model": model, "best_val_macro_f1": round(result.best_val_macro_f1, 6),
        "epochs": len(result.history), "epoch_seconds": [round(s, 2) for s in result.epoch_seconds],
        "mlflow_run_id": logger.run_id, "mlflow_experiment_id": logger.experiment_id, "budget": result.budget,
    })
    client = logger.experiment
    # The checkpoint travels with its tokenizer, so a later export can rebuild the bundle from the run alone.
    client.log_artifact(logger.run_id, str(result.best_checkpoint), "checkpoint")
    client.log_artifact(logger.run_id, str(data_dir / "tokenizer.json"), "checkpoint")
    client.log_artifact(logger.run_id, str(curves), "curves")
    b = result.budget
    log.info("train %s: best val macro-F1 %.4f after %d epochs (stopped by %s; %d texts seen, %s a second)",
             model, result.best_val_macro_f1, len(result.history), b["stopped_by"], b["texts_seen"],
             b["texts_per_second"])


if __name__ == "__main__":
    run(main)

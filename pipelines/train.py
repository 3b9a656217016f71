"""Stage train: fit one model (`--model`) and keep its best checkpoint and per-epoch curves."""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch.loggers import MLFlowLogger

from pipelines.cli import parser, run
from pipelines.params import MODEL_NAMES, Params, load_params
from training.datamodule import TextDataModule
from training.fit import fit_model, write_curves
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
    data = TextDataModule(args.data, Path(args.data) / "tokenizer.json", tp.batch_size,
                          tp.bucket_batches, tp.pad_to_max_len, tp.seed, tp.sentence_views)
    out = Path(args.out) / args.model
    logger = mlflow_logger(args.model, all_params, Path(args.data))
    lm_bundle = None
    if tp.init_from_lm and args.model != "tfidf":  # tfidf has no embedding for a language model to initialise
        if all_params.pretrain.enabled:
            lm_bundle = load_lm_bundle(Path(args.lm) / "lm.pt")
        else:
            log.info("train: pretrain.enabled is false, so no language model: training from scratch")
    logger.log_hyperparams({"initialised_from_lm": lm_bundle is not None})
    result = fit_model(args.model, model_params.model_dump(), tp, data, out, loggers=[logger], lm_bundle=lm_bundle)
    if result.trainer is None:  # scikit-learn fitted it: no Lightning loop logged its scores or ended the run
        logger.log_metrics({k: v for k, v in result.history[-1].items() if k != "epoch"}, step=0)
        logger.log_hyperparams({f"fit.{k}": v for k, v in result.details.items()})
        logger.finalize("success")
    if result.trainer is not None and result.trainer.global_rank != 0:
        return
    curves = Path(args.metrics) / "curves" / f"{args.model}.csv"
    write_curves(result.history, curves)
    write_json(out / "train.json", {
        "model": args.model, "best_val_macro_f1": round(result.best_val_macro_f1, 6),
        "epochs": len(result.history), "epoch_seconds": [round(s, 2) for s in result.epoch_seconds],
        "mlflow_run_id": logger.run_id, "mlflow_experiment_id": logger.experiment_id,
    })
    client = logger.experiment
    # The checkpoint travels with its tokenizer, so a later export can rebuild the bundle from the run alone.
    client.log_artifact(logger.run_id, str(result.best_checkpoint), "checkpoint")
    client.log_artifact(logger.run_id, str(Path(args.data) / "tokenizer.json"), "checkpoint")
    client.log_artifact(logger.run_id, str(curves), "curves")
    log.info("train %s: best val macro-F1 %.4f after %d epochs", args.model, result.best_val_macro_f1,
             len(result.history))


if __name__ == "__main__":
    run(main)

"""Stage train: fit one model (`--model`) and keep its best checkpoint and per-epoch curves."""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.cli import parser, run, write_json
from pipelines.params import MODEL_NAMES, load_params
from training.datamodule import TextDataModule
from training.fit import fit_classifier

log = logging.getLogger("textclf.train")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--model", required=True, choices=MODEL_NAMES)
    p.add_argument("--data", default="data/processed", help="preprocess's output folder")
    p.add_argument("--out", default="models", help="checkpoints go to OUT/<model>/")
    p.add_argument("--metrics", default="metrics", help="curves go to METRICS/curves/<model>.csv")
    args = p.parse_args()
    params = load_params(args.params).train
    tp, model_params = params.trainer, params.model(args.model)
    data = TextDataModule(args.data, Path(args.data) / "tokenizer.json", tp.batch_size,
                          tp.bucket_batches, tp.pad_to_max_len, tp.seed)
    out = Path(args.out) / args.model
    result = fit_classifier(args.model, model_params.model_dump(), tp, data, out)
    if result.trainer is not None and result.trainer.global_rank != 0:
        return
    from training.fit import EpochHistory

    history = EpochHistory()
    history.rows = result.history
    history.write_csv(Path(args.metrics) / "curves" / f"{args.model}.csv")
    write_json(out / "train.json", {
        "model": args.model, "best_val_macro_f1": round(result.best_val_macro_f1, 6),
        "epochs": len(result.history), "epoch_seconds": [round(s, 2) for s in result.epoch_seconds],
    })
    log.info("train %s: best val macro-F1 %.4f after %d epochs", args.model, result.best_val_macro_f1,
             len(result.history))


if __name__ == "__main__":
    run(main)

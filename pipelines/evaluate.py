"""Stage evaluate: score a model's best checkpoint on val and test; write metrics and confusion plot data."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from pipelines.cli import parser, run, write_json
from pipelines.params import MODEL_NAMES, load_params
from training.datamodule import TextDataModule
from training.evaluation import load_classifier, predict_split, score

log = logging.getLogger("textclf.evaluate")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--model", required=True, choices=MODEL_NAMES)
    p.add_argument("--data", default="data/processed")
    p.add_argument("--models", default="models")
    p.add_argument("--metrics", default="metrics")
    args = p.parse_args()
    tp = load_params(args.params).train.trainer
    module = load_classifier(Path(args.models) / args.model / "best.ckpt")
    data = TextDataModule(args.data, Path(args.data) / "tokenizer.json", tp.batch_size, seed=tp.seed)
    if list(module.hparams.labels) != data.labels:
        raise ValueError(f"checkpoint labels {module.hparams.labels} differ from the data's {data.labels}: retrain")
    results = {"model": args.model, "labels": data.labels}
    for split in ("val", "test"):
        preds, target = predict_split(module, data, split)
        results[split] = score(preds, target, data.labels)
    metrics_dir = Path(args.metrics)
    write_json(metrics_dir / f"{args.model}.json", results)
    (metrics_dir / "confusion").mkdir(parents=True, exist_ok=True)
    with (metrics_dir / "confusion").joinpath(f"{args.model}.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["actual", "predicted"])
        writer.writerows((data.labels[t], data.labels[p]) for p, t in zip(preds.tolist(), target.tolist(), strict=True))
    log.info("evaluate %s: test accuracy %.4f, macro-F1 %.4f", args.model,
             results["test"]["accuracy"], results["test"]["macro_f1"])


if __name__ == "__main__":
    run(main)

"""Stage evaluate: score a model's best checkpoint on val and test; write metrics and confusion plot data."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from pipelines.cli import parser, run, write_json
from pipelines.params import CANDIDATES, load_params
from training.datamodule import TextDataModule
from training.ensemble import load_candidate
from training.evaluation import check_labels, predict_split, score
from training.tracking import quiet_mlflow, tracking_uri

log = logging.getLogger("textclf.evaluate")


def confusion_figure(matrix: list[list[int]], labels: list[str]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.2 * len(labels) + 1.5))
    ax.imshow(matrix, cmap="Blues")
    ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels,
           xlabel="predicted", ylabel="actual", title="test confusion matrix")
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center")
    fig.tight_layout()
    return fig


def log_to_run(train_summary: Path, results: dict, metrics_file: Path) -> None:
    """Add val/test metrics, the confusion matrix image and the metrics file to the model's training run."""
    import mlflow

    quiet_mlflow()
    run_id = json.loads(train_summary.read_text())["mlflow_run_id"]
    client = mlflow.MlflowClient(tracking_uri())
    for split in ("val", "test"):
        for key in ("accuracy", "macro_f1"):
            client.log_metric(run_id, f"{split}_{key}_final", results[split][key])
        for label, values in results[split]["per_class"].items():
            client.log_metric(run_id, f"{split}_f1_{label}", values["f1"])
    figure = confusion_figure(results["test"]["confusion_matrix"], results["labels"])
    client.log_figure(run_id, figure, "confusion_matrix.png")
    client.log_artifact(run_id, str(metrics_file), "metrics")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--model", required=True, choices=CANDIDATES)
    p.add_argument("--data", default="data/processed")
    p.add_argument("--models", default="models")
    p.add_argument("--metrics", default="metrics")
    args = p.parse_args()
    tp = load_params(args.params).train.trainer
    model, labels, _ = load_candidate(Path(args.models) / args.model)
    data = TextDataModule(args.data, Path(args.data) / "tokenizer.json", tp.batch_size, seed=tp.seed)
    check_labels(labels, data)
    results = {"model": args.model, "labels": data.labels}
    for split in ("val", "test"):
        preds, target = predict_split(model, data, split)
        results[split] = score(preds, target, data.labels)
    metrics_dir = Path(args.metrics)
    write_json(metrics_dir / f"{args.model}.json", results)
    (metrics_dir / "confusion").mkdir(parents=True, exist_ok=True)
    with (metrics_dir / "confusion").joinpath(f"{args.model}.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["actual", "predicted"])
        writer.writerows((data.labels[t], data.labels[p]) for p, t in zip(preds.tolist(), target.tolist(), strict=True))
    log_to_run(Path(args.models) / args.model / "train.json", results, metrics_dir / f"{args.model}.json")
    log.info("evaluate %s: test accuracy %.4f, macro-F1 %.4f", args.model,
             results["test"]["accuracy"], results["test"]["macro_f1"])


if __name__ == "__main__":
    run(main)

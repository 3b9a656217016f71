"""Everything select needs to know about one candidate: val/test scores and the behavioural checks.

`assess` scores a candidate on val and test, runs the dataset's checklist on it, writes
metrics/<name>.json (scores), metrics/confusion/<name>.csv (test predictions, for `dvc plots`) and
metrics/checks/<name>.json (its `CheckRecord`, training/records.py: its MLflow run, headline scores, pass rates, failing
cases), and logs them to the candidate's MLflow run. select reads only the records, so the pipeline's
select stage can depend on the one folder metrics/checks/ whatever models params.yaml lists.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from serving.contract import encode, pad
from training.calibration import calibrate, reliability_curves, reliability_figure
from training.checks import Checklist, below_floors, load_checklist, run_checks
from training.cost import serving_cost
from training.evaluation import check_labels, score
from training.jsonio import write_json
from training.records import CheckRecord
from training.textdata import TextData
from training.tracking import dataset_name, quiet_mlflow, tracking_uri

log = logging.getLogger("textclf.assess")


def find_checklist(setting: str, source: str, root: Path = Path("checks")) -> Path | None:
    """`auto` → checks/<dataset>.yaml if present; `none` → no checks; anything else is a path that must exist."""
    if setting == "none":
        return None
    if setting == "auto":
        path = root / f"{dataset_name(source)}.yaml"
        return path if path.is_file() else None
    if not Path(setting).is_file():
        raise FileNotFoundError(f"check.checklist: {setting} not found; give a checklist file, auto or none")
    return Path(setting)


def torch_predictor(model: torch.nn.Module, tokenizer: Tokenizer, batch_size: int = 64):
    """texts → probabilities with the PyTorch model, batched the way serving pads."""

    @torch.inference_mode()
    def predict(texts: list[str]) -> np.ndarray:
        ids = encode(tokenizer, texts)
        parts = [model(torch.from_numpy(pad(ids[i : i + batch_size]))).softmax(-1).numpy()
                 for i in range(0, len(ids), batch_size)]
        return np.concatenate(parts)

    return predict


def check_model(checklist: Checklist | None, predict, labels: list[str], floors: dict[str, float]) -> dict:
    if checklist is None:
        return {"checklist": None, "passed": True, "below_floor": [], "pass_rate": {}, "failed": []}
    results = run_checks(checklist, predict, labels)
    failing = below_floors(results["pass_rate"], floors)
    return {"checklist": str(checklist.path), "passed": not failing, "below_floor": failing, **results}


@dataclass(frozen=True)
class Candidate:
    name: str
    model: torch.nn.Module
    labels: list[str]
    run_id: str  # the MLflow run its scores and checks are logged to
    members: list[str] | None = None  # an ensemble's models
    details: dict | None = None  # more for its record (the ensemble: how its members were chosen)
    training: dict | None = None  # how it was trained (train.json's budget), carried into metrics/<name>.json


def headline(split: dict) -> dict:
    return {"accuracy": split["accuracy"], "macro_f1": split["macro_f1"]}


def assess(candidate: Candidate, params: Any, metrics_dir: Path, data: TextData,
           logits: dict[str, torch.Tensor]) -> CheckRecord:
    """Score and check one candidate from its val and test outputs (`logits`, training/split_logits.py); write its
    metrics and record; log both to its MLflow run. `data`: the splits, read with params' batch size and seed."""
    check_labels(candidate.labels, data)
    splits = tuple(logits)
    targets = {s: torch.tensor(data.datasets[s].labels, dtype=torch.long) for s in splits}
    # What is scored, checked and exported is the calibrated model: the same predictions, honest scores.
    model, calibration = calibrate(candidate.model, logits, targets)
    curves = reliability_curves(logits, targets, calibration["temperature"])
    scores = {"model": candidate.name, "labels": data.labels,
              **{split: score(logits[split].argmax(-1), targets[split], data.labels) for split in splits},
              "calibration": {**calibration, "reliability": curves}}
    if candidate.training is not None:
        scores["training"] = candidate.training
    write_json(metrics_dir / f"{candidate.name}.json", scores)
    write_confusion(metrics_dir / "confusion" / f"{candidate.name}.csv", logits["test"].argmax(-1),
                    targets["test"], data.labels)
    record = CheckRecord(model=candidate.name, mlflow_run_id=candidate.run_id, members=candidate.members,
                         val=headline(scores["val"]), test=headline(scores["test"]), calibration=calibration,
                         cost_ms_per_text=serving_cost(model, data.tokenizer, cost_sample(data)),
                         **(candidate.details or {}), **run_checklist(model, candidate.labels, params, data.tokenizer))
    record.write(metrics_dir / "checks" / f"{candidate.name}.json")
    log_to_run(scores, record, metrics_dir)
    rates = ", ".join(f"{k} {v:.1%}" for k, v in record.pass_rate.items() if v is not None) or "no checklist"
    verdict = "passes the floors" if record.passed else f"below the floors: {'; '.join(record.below_floor)}"
    c = record.calibration
    log.info("%s: test accuracy %.4f, macro-F1 %.4f, ECE %.4f (T=%g; %.4f uncalibrated); checks %s, %s",
             candidate.name, record.test.accuracy, record.test.macro_f1, c.test_ece, c.temperature,
             c.test_ece_uncalibrated, rates, verdict)
    return record


def cost_sample(data: TextData, n: int = 256) -> list[str]:
    """The texts every candidate's serving cost is measured on: the first `n` of the val split."""
    return list(data.texts("val", n))


def run_checklist(model: torch.nn.Module, labels: list[str], params: Any, tokenizer: Tokenizer) -> dict:
    path = find_checklist(params.check.checklist, params.data.source)
    dataset = dataset_name(params.data.source)
    if path is None:
        log.info("no checklist for dataset %r (looked for checks/%s.yaml): the behavioural gate passes",
                 dataset, dataset)
    checklist = None if path is None else load_checklist(path, dataset, labels)
    return check_model(checklist, torch_predictor(model, tokenizer), labels, params.check.floors.model_dump())


def write_confusion(path: Path, preds: torch.Tensor, target: torch.Tensor, labels: list[str]) -> None:
    """Test (actual, predicted) pairs, the shape `dvc plots`' confusion template reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["actual", "predicted"])
        writer.writerows((labels[t], labels[p]) for p, t in zip(preds.tolist(), target.tolist(), strict=True))


def confusion_figure(matrix: list[list[int]], labels: list[str]):
    from matplotlib.figure import Figure  # not pyplot: no backend to pick, no figure left open

    fig = Figure(figsize=(1.2 * len(labels) + 2, 1.2 * len(labels) + 1.5))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels,
           xlabel="predicted", ylabel="actual", title="test confusion matrix")
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center")
    fig.tight_layout()
    return fig


def log_to_run(scores: dict, record: CheckRecord, metrics_dir: Path) -> None:
    """Val/test metrics, pass rates, the confusion matrix image and both files on the candidate's run."""
    import mlflow
    from mlflow.entities import Metric, RunTag

    quiet_mlflow()
    client, run_id, c = mlflow.MlflowClient(tracking_uri()), record.mlflow_run_id, record.calibration
    splits = ("val", "test")
    values = {f"{split}_{key}_final": scores[split][key] for split in splits for key in ("accuracy", "macro_f1")}
    values |= {f"{split}_f1_{label}": per["f1"]
               for split in splits for label, per in scores[split]["per_class"].items()}
    values |= {f"check_{kind}_pass_rate": rate for kind, rate in record.pass_rate.items() if rate is not None}
    values |= {"val_ece_final": c.val_ece, "test_ece_final": c.test_ece, "val_ece_uncalibrated": c.val_ece_uncalibrated,
               "test_ece_uncalibrated": c.test_ece_uncalibrated, "temperature": c.temperature,
               "cost_ms_per_text": record.cost_ms_per_text}
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in values.items()],
                     tags=[RunTag("behavioural_checks", "passed" if record.passed else "failed")])
    client.log_figure(run_id, confusion_figure(scores["test"]["confusion_matrix"], scores["labels"]),
                      "confusion_matrix.png")
    client.log_figure(run_id, reliability_figure(scores["calibration"]["reliability"],
                                                 f"{record.model}: reliability ({c.bins} bins)"),
                      "reliability_diagram.png")
    client.log_artifact(run_id, str(metrics_dir / f"{record.model}.json"), "metrics")
    client.log_artifact(run_id, str(metrics_dir / "checks" / f"{record.model}.json"), "checks")

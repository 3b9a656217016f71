"""Stage ensemble: the trained models' averaged probabilities as one more candidate for select.

The members are params.yaml's train.models, read from models/<model>/best.ckpt. The stage opens an MLflow
run for the ensemble with the members' checkpoints and the tokenizer as artifacts, then scores and checks
it like evaluate does a single model (metrics/ensemble.json, metrics/checks/ensemble.json).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import mlflow

from pipelines.cli import parser, run
from pipelines.params import ENSEMBLE, load_params
from training.assessment import Candidate, assess
from training.ensemble import CHECKPOINT, load_ensemble
from training.tracking import (
    check_reachable,
    ensure_experiment,
    experiment_name,
    log_splits,
    quiet_mlflow,
    run_tags,
    tracking_uri,
)

log = logging.getLogger("textclf.ensemble")


def open_run(members: list[str], models_dir: Path, data_dir: Path, source: str) -> str:
    """An MLflow run for the ensemble, tagged with its members' runs, their checkpoints as artifacts."""
    quiet_mlflow()
    check_reachable(tracking_uri())
    experiment_id = ensure_experiment(experiment_name(source))
    client = mlflow.MlflowClient(tracking_uri())
    runs = {m: json.loads((models_dir / m / "train.json").read_text())["mlflow_run_id"] for m in members}
    tags = {**run_tags(ENSEMBLE, str(data_dir)), **{f"member.{m}": run_id for m, run_id in runs.items()}}
    run_id = client.create_run(experiment_id, run_name=ENSEMBLE, tags=tags).info.run_id
    client.log_param(run_id, "members", ",".join(members))
    client.log_param(run_id, "combination", "mean of the members' probabilities")
    log_splits(client, run_id, str(data_dir))
    with tempfile.TemporaryDirectory() as tmp:
        for member in members:  # <member>.ckpt, so the run alone can rebuild the ensemble
            shutil.copy(models_dir / member / CHECKPOINT, Path(tmp) / f"{member}.ckpt")
            client.log_artifact(run_id, str(Path(tmp) / f"{member}.ckpt"), "checkpoint")
    client.log_artifact(run_id, str(data_dir / "tokenizer.json"), "checkpoint")
    client.set_terminated(run_id)
    return run_id


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--models", default="models")
    p.add_argument("--data", default="data/processed")
    p.add_argument("--metrics", default="metrics")
    args = p.parse_args()
    params = load_params(args.params)
    members, models_dir, data_dir = list(params.train.models), Path(args.models), Path(args.data)
    for member in members:
        if not (models_dir / member / "train.json").is_file():
            raise FileNotFoundError(f"{models_dir / member} has no trained model: run `dvc repro train@{member}`")
    model, labels = load_ensemble(models_dir, members)
    run_id = open_run(members, models_dir, data_dir, params.data.source)
    log.info("ensemble: %s averaged, MLflow run %s", ", ".join(members), run_id)
    assess(Candidate(ENSEMBLE, model, labels, run_id, members), params, data_dir, Path(args.metrics))


if __name__ == "__main__":
    run(main)

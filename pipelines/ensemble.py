"""Stage ensemble: the trained models' averaged probabilities as one more candidate for select.

The members are params.yaml's train.models, read from models/<model>/best.ckpt. The stage opens an MLflow
run for the ensemble, tagged `member.<model>` with each member's run (which holds that member's checkpoint
and the tokenizer), then scores and checks it like evaluate does a single model (metrics/ensemble.json,
metrics/checks/ensemble.json). Once exported, the ensemble's own run holds its MLflow Model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlflow

from pipelines.cli import parser, run
from pipelines.params import ENSEMBLE, load_params
from training.assessment import Candidate, assess
from training.ensemble import load_ensemble
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


def member_runs(models_dir: Path, members: list[str]) -> dict[str, str]:
    """Each member's MLflow run, from its train stage's summary."""
    runs = {}
    for member in members:
        summary = models_dir / member / "train.json"
        if not summary.is_file():
            raise FileNotFoundError(f"{models_dir / member} has no trained model: run `dvc repro train@{member}`")
        runs[member] = json.loads(summary.read_text())["mlflow_run_id"]
    return runs


def open_run(runs: dict[str, str], data_dir: Path, source: str) -> str:
    """A finished MLflow run for the ensemble, tagged with its members' runs (their checkpoints live there)."""
    quiet_mlflow()
    check_reachable(tracking_uri())
    experiment_id = ensure_experiment(experiment_name(source))
    client = mlflow.MlflowClient(tracking_uri())
    tags = {**run_tags(ENSEMBLE, str(data_dir)), **{f"member.{m}": run_id for m, run_id in runs.items()}}
    run_id = client.create_run(experiment_id, run_name=ENSEMBLE, tags=tags).info.run_id
    client.log_param(run_id, "members", ",".join(runs))
    client.log_param(run_id, "combination", "mean of the members' probabilities")
    log_splits(client, run_id, str(data_dir))
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
    runs = member_runs(models_dir, members)
    model, labels = load_ensemble(models_dir, members)
    run_id = open_run(runs, data_dir, params.data.source)
    log.info("ensemble: %s averaged, MLflow run %s", ", ".join(members), run_id)
    assess(Candidate(ENSEMBLE, model, labels, run_id, members), params, data_dir, Path(args.metrics))


if __name__ == "__main__":
    run(main)

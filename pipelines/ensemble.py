"""Stage ensemble: the trained models' averaged probabilities as one more candidate for select.

Copies each model's best checkpoint into models/ensemble/<model>.ckpt and opens an MLflow run for it
with those checkpoints and the tokenizer as artifacts, so evaluate, check, select and export treat the
ensemble like any single model.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import mlflow

from pipelines.cli import parser, run, write_json
from pipelines.params import MODEL_NAMES, load_params
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
NAME = "ensemble"


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--models", default="models")
    p.add_argument("--data", default="data/processed")
    args = p.parse_args()
    params = load_params(args.params)
    out = Path(args.models) / NAME
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    members = {}
    for model in MODEL_NAMES:
        src = Path(args.models) / model / "best.ckpt"
        if not src.is_file():
            raise FileNotFoundError(f"{src} not found: run the train stage for {model} first")
        shutil.copy(src, out / f"{model}.ckpt")
        members[model] = json.loads((Path(args.models) / model / "train.json").read_text())["mlflow_run_id"]
    quiet_mlflow()
    check_reachable(tracking_uri())
    experiment_id = ensure_experiment(experiment_name(params.data.source))
    client = mlflow.MlflowClient(tracking_uri())
    tags = {**run_tags(NAME, args.data), **{f"member.{m}": run_id for m, run_id in members.items()}}
    run_id = client.create_run(experiment_id, run_name=NAME, tags=tags).info.run_id
    client.log_param(run_id, "members", ",".join(MODEL_NAMES))
    client.log_param(run_id, "combination", "mean of the members' probabilities")
    log_splits(client, run_id, args.data)
    for model in MODEL_NAMES:
        client.log_artifact(run_id, str(out / f"{model}.ckpt"), "checkpoint")
    client.log_artifact(run_id, str(Path(args.data) / "tokenizer.json"), "checkpoint")
    client.set_terminated(run_id)
    write_json(out / "train.json", {"model": NAME, "members": list(MODEL_NAMES), "mlflow_run_id": run_id,
                                    "mlflow_experiment_id": experiment_id})
    log.info("ensemble: %s averaged, MLflow run %s", ", ".join(MODEL_NAMES), run_id)


if __name__ == "__main__":
    run(main)

"""A real MLflow registry (sqlite) whose `textclf@champion` is a tiny bundle logged as the pipeline logs it."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow

from training.registry import ALIAS, log_bundle_model, register


def make_registry(tmp: Path, bundle: Path, name: str = "textclf") -> str:
    """Log `bundle` as a pyfunc MLflow Model, register it as `name` and give it the alias; returns the URI."""
    import json

    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)  # also exports MLFLOW_TRACKING_URI: undone below, or later subprocesses inherit it
    try:
        experiment = mlflow.create_experiment("registry-test", artifact_location=(tmp / "artifacts").as_uri())
        client = mlflow.MlflowClient(uri)
        run_id = client.create_run(experiment).info.run_id
        labels = json.loads((bundle / "meta.json").read_text())["labels"]
        info = log_bundle_model(run_id, bundle, labels, {}, None, {"model": "tiny"})
        version = register(name, info.model_uri, {"model": "tiny"})
        client.set_registered_model_alias(name, ALIAS, version.version)
    finally:
        mlflow.set_tracking_uri(None)
        if previous is not None:
            os.environ["MLFLOW_TRACKING_URI"] = previous
    return uri

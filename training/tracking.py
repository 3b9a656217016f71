"""MLflow wiring: where the store is, one experiment per dataset, run tags, reachability, flat params."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any

DEFAULT_STORE = "sqlite:///mlflow.db"
ARTIFACT_DIR = "mlartifacts"


class TrackingError(RuntimeError):
    """The tracking server can't be used."""


def quiet_mlflow() -> None:
    """Start-up chatter (alembic migrations, store init) down to warnings, and an unreachable server a quick
    failure (one retry, a 10 s timeout) instead of minutes of retries. Telemetry is off in pipelines/cli.py."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    for name in ("alembic", "mlflow.store", "mlflow.tracking", "mlflow.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_STORE


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """One quick request to an HTTP tracking server; a local store needs none."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingError(f"MLflow tracking server {uri} can't be reached ({reason}); "
                            "start it or unset MLFLOW_TRACKING_URI") from None


def dataset_name(source: str) -> str:
    """The built-in corpus's name, or the data file's stem: names the experiment and the checklist."""
    return Path(source).stem if "/" in source or "." in source else source


def experiment_name(source: str) -> str:
    """One experiment per dataset for the classifiers: select-all → Compare shows only classifiers."""
    return f"textclf-{dataset_name(source)}"


def lm_experiment_name(source: str) -> str:
    """The language models' runs (perplexity, not F1) get an experiment of their own."""
    return f"{experiment_name(source)}-lm"


# MLflow's UI opens an experiment of this kind on its runs table, not on the GenAI traces view.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def ensure_experiment(name: str) -> str:
    """The experiment's id, creating it with artifacts under mlartifacts/ for a local store."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        for key, value in EXPERIMENT_KIND.items():
            if experiment.tags.get(key) != value:  # made by an older version
                mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id
    location = Path(ARTIFACT_DIR).resolve().as_uri() if tracking_uri().startswith("sqlite:") else None
    return mlflow.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)


def open_experiment(name: str) -> str:
    """What a stage does before its runs: MLflow quiet, the tracking server reachable, `ensure_experiment(name)`."""
    quiet_mlflow()
    check_reachable(tracking_uri())
    return ensure_experiment(name)


SPLITS = ("train", "val", "test")
SPLIT_CONTEXT = {"train": "training", "val": "validation", "test": "testing"}


def split_datasets(data_dir: str | Path) -> dict:
    """The processed splits as MLflow datasets named by split, with the data hash as digest."""
    import mlflow.data
    import pandas as pd

    digest = data_hash(data_dir)
    paths = {split: Path(data_dir) / f"{split}.parquet" for split in SPLITS}
    with warnings.catch_warnings():  # a local path matches two equivalent source types; MLflow picks one
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        return {split: mlflow.data.from_pandas(pd.read_parquet(path), source=str(path.resolve()), targets="label",
                                               name=split, digest=digest) for split, path in paths.items()}


def log_splits(client, run_id: str, data_dir: str | Path) -> None:
    """Log train, val and test as the run's inputs: the runs table's Dataset column."""
    from mlflow.entities import DatasetInput, InputTag

    inputs = [DatasetInput(ds._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", SPLIT_CONTEXT[split])])
              for split, ds in split_datasets(data_dir).items()]
    client.log_inputs(run_id, datasets=inputs)


def data_hash(data_dir: str | Path) -> str:
    """sha256 over the processed splits and tokenizer: the identity of the data a model saw."""
    digest = hashlib.sha256()
    for name in ("train.parquet", "val.parquet", "test.parquet", "tokenizer.json"):
        digest.update(name.encode() + (Path(data_dir) / name).read_bytes())
    return digest.hexdigest()[:16]


def git_state() -> tuple[str, bool]:
    """(commit, dirty) of the working tree; ('unknown', True) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown", True
    return commit.strip(), bool(dirty.strip())


def run_tags(model: str, data_dir: str | Path) -> dict[str, str]:
    commit, dirty = git_state()
    tags = {"model": model, "git_commit": commit, "git_dirty": str(dirty).lower(), "data_hash": data_hash(data_dir),
            "mlflow.source.git.commit": commit}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    return tags


def flatten(tree: dict[str, Any]) -> dict[str, Any]:
    """{'train': {'lr': 1}} → {'train.lr': 1}: every param as one MLflow param."""
    import pandas as pd

    return pd.json_normalize(tree, sep=".").to_dict("records")[0]

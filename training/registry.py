"""The model registry: the promotion gate, the bundle logged as an MLflow Model, and the `champion` alias.

Only the export stage moves the alias, and only for a model whose ONNX export passed parity and whose
validation score passed the gate; everything else leaves the old champion where it was.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from serving.contract import MODEL_FILE, TOKENIZER_FILE

ALIAS = "champion"
# Version tags (ISO times, UTC) and the registered model's history of alias moves.
TAKEN_TAG, LOST_TAG, ROLLED_BACK_TAG = "champion_taken_at", "champion_lost_at", "rolled_back_at"
PARITY_TAG = "parity_max_abs_diff"
HISTORY_TAG = "champion_history"
MODEL_ARTIFACT = "model"  # the logged model's name within its run
# The README's examples: the input example MLflow stores beside the signature.
EXAMPLE_TEXTS = ("这本书很好看", "质量太差了，不会再买", "宝宝很喜欢这本书")


def current_champion(client, name: str):
    """The model version behind `name@champion`, or None when there is no such model or alias.

    Any other failure (a timeout, a 5xx) is an error, never "no champion": that would let the gate wave a
    worse model through."""
    from mlflow.exceptions import MlflowException

    from training.tracking import TrackingError

    try:
        return client.get_model_version_by_alias(name, ALIAS)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise TrackingError(f"cannot read {name}@{ALIAS} from the registry: {err.message}") from None


def move_champion(client, name: str, version: str, by: str, reason: str) -> str:
    """Point `name@champion` at `version` and record it: the version that takes the alias and the one that
    loses it are tagged with the time, and the registered model's `champion_history` tag keeps the last moves.
    Returns the time recorded (ISO, UTC)."""
    before = current_champion(client, name)
    at = datetime.now(UTC).isoformat(timespec="milliseconds")
    client.set_registered_model_alias(name, ALIAS, version)
    previous = None if before is None else str(before.version)
    if previous is not None and previous != str(version):
        client.set_model_version_tag(name, previous, LOST_TAG, at)
    client.set_model_version_tag(name, version, TAKEN_TAG, at)
    if ROLLED_BACK_TAG in client.get_model_version(name, version).tags:  # chosen again on purpose
        client.delete_model_version_tag(name, version, ROLLED_BACK_TAG)
    history = json.loads(client.get_registered_model(name).tags.get(HISTORY_TAG, "[]"))
    history.append({"version": str(version), "previous": previous, "at": at, "by": by, "reason": reason[:200]})
    while len(json.dumps(history)) > 4500:  # MLflow caps a tag value at 5000 characters
        history.pop(0)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history, ensure_ascii=False))
    return at


def previous_champion(client, name: str, current: str | None) -> str | None:
    """The version that lost `champion` most recently, other than `current` and never one rolled back from
    (so repeated rollbacks walk back through history instead of flipping between two versions), or None."""
    held = [(v.tags[LOST_TAG], str(v.version)) for v in client.search_model_versions(f"name = '{name}'")
            if LOST_TAG in v.tags and ROLLED_BACK_TAG not in v.tags and str(v.version) != current]
    return max(held)[1] if held else None


def rolled_back_twin(client, name: str, version):
    """A version rolled back from that is the same model as `version` (same training run or same ONNX file), or
    None: a new registration of a rolled-back model (e.g. after a change to the pyfunc code) stays rolled back."""
    for other in client.search_model_versions(f"name = '{name}'"):
        if ROLLED_BACK_TAG in other.tags and (other.run_id == version.run_id or (
                other.tags.get("onnx_sha256") and other.tags.get("onnx_sha256") == version.tags.get("onnx_sha256"))):
            return other
    return None


def passed_parity(version) -> bool:
    """Export registers a version only after its ONNX parity passed and records the figure; versions from before
    the figure was recorded carry the fingerprint that only export's registration sets."""
    return PARITY_TAG in version.tags or {"fingerprint", "onnx_sha256"} <= set(version.tags)


def gate(val_f1: float, min_val_f1: float, champion, digest: str) -> tuple[bool, str]:
    """Promote only above the floor, and never below the current champion on the same data."""
    if val_f1 < min_val_f1:
        return False, f"val macro-F1 {val_f1:.4f} is below select.min_val_f1 {min_val_f1}"
    if champion is not None and champion.tags.get("data_hash") == digest:
        best = float(champion.tags.get("val_macro_f1", "nan"))
        if val_f1 < best:
            return False, (f"val macro-F1 {val_f1:.4f} is below champion v{champion.version} "
                           f"({champion.tags.get('model')}, {best:.4f}) on the same data")
    return True, "passed the gate"


def serve_requirements() -> list[str]:
    """What `pip install textclf[serve]` installs (the base plus the serve extra), markers stripped.

    The pyfunc imports nothing else, so `mlflow models serve` with a virtualenv builds the same runtime as
    the BentoML image; MLflow adds its own pin."""
    requirements = []
    for req in metadata.requires("textclf") or []:
        spec, _, marker = req.partition(";")
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if not marker.strip() or (extra and extra.group(1) == "serve"):
            requirements.append(spec.strip())
    return list(dict.fromkeys(requirements))


def fingerprint(bundle: Path) -> str:
    """What a logged model is made of: the bundle files, the pyfunc's code and its requirements. A rerun with
    the same fingerprint reuses its registered version; any change logs a new one."""
    import hashlib

    from serving import pyfunc

    digest = hashlib.sha256()
    for path in [bundle / MODEL_FILE, bundle / TOKENIZER_FILE, *sorted(Path(pyfunc.__file__).parent.glob("*.py"))]:
        digest.update(path.name.encode() + path.read_bytes())
    digest.update("\n".join(serve_requirements()).encode())
    return digest.hexdigest()[:16]


def log_bundle_model(run_id: str, bundle: Path, labels: list[str], metrics: dict[str, float],
                     data_dir: Path | None, tags: dict[str, str]):
    """Log the bundle as a pyfunc MLflow Model on the candidate's run; its metrics link to it per split."""
    import mlflow
    import pandas as pd

    from serving import pyfunc
    from training.tracking import split_datasets

    serving_code = Path(pyfunc.__file__).parent
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT, python_model=pyfunc.BundleModel(),
            artifacts={pyfunc.BUNDLE_ARTIFACT: str(bundle)}, code_paths=[str(serving_code)],
            pip_requirements=serve_requirements(), signature=pyfunc.signature(labels),
            input_example=pd.DataFrame({pyfunc.TEXT_COLUMN: list(EXAMPLE_TEXTS)}),
            model_type="text-classifier", tags=tags,
        )
        for split, dataset in (split_datasets(data_dir) if metrics else {}).items():
            split_metrics = {k: v for k, v in metrics.items() if k.startswith(f"{split}_")}
            if split_metrics:  # shown on the model's page, against the dataset it was measured on
                mlflow.log_metrics(split_metrics, model_id=info.model_id, dataset=dataset)
    return info


def register(name: str, model_uri: str, tags: dict[str, str]) -> Any:
    """A new version of registered model `name` (created when missing) from a logged model."""
    import mlflow

    client = mlflow.MlflowClient()
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name, description="textclf champion classifier: an ONNX bundle as a "
                                                         "pyfunc (text in; label and one score per label out)")
    version = mlflow.register_model(model_uri, name, tags=tags)
    return client.get_model_version(name, version.version)

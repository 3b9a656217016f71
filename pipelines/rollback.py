"""Move `champion` back, or pin it to a version, and let every running service follow.

    python -m pipelines.rollback            # back to the version that held champion before this one
    python -m pipelines.rollback --to 3     # to registered version 3

It refuses, naming why, a version that does not exist, one that never passed ONNX parity, one whose bundle
cannot be fetched or does not answer, and a registry it cannot reach; nothing changes then. Otherwise the
alias moves (the registry tags both versions with the time, and the registered model's `champion_history`
tag records the move), artifacts/bundle becomes that version's bundle from its MLflow Model, the BentoML store
gets it, and the release channel points at it: services following the channel switch within their reload
interval. metrics/best.json records the rollback. A later `dvc repro` judges new candidates against the
champion as it now stands and never promotes the rolled-back version again by itself.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from pipelines.cli import parser, run
from pipelines.export import fetch_bundle, replace_dir
from pipelines.package import deploy
from pipelines.params import load_params
from training.jsonio import write_json
from training.registry import ALIAS, ROLLED_BACK_TAG, current_champion, move_champion, passed_parity, previous_champion
from training.tokenizer import file_sha256
from training.tracking import TrackingError, quiet_mlflow, tracking_uri

log = logging.getLogger("textclf.rollback")


class RollbackError(ValueError):
    """The rollback was refused; nothing changed."""


def choose(client, name: str, to: int | None):
    """(the version to serve, the current champion or None); a `RollbackError` says why not."""
    from mlflow.exceptions import MlflowException

    current = current_champion(client, name)  # TrackingError when the registry cannot be reached
    now = None if current is None else str(current.version)
    wanted = str(to) if to is not None else previous_champion(client, name, now)
    if wanted is None:
        raise RollbackError(f"'{name}' has no earlier {ALIAS} on record (champion is {'v' + now if now else 'unset'});"
                            " name a version with --to N")
    try:
        target = client.get_model_version(name, wanted)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            known = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
            raise RollbackError(f"'{name}' has no version {wanted}; its versions are {known}") from None
        raise TrackingError(f"cannot read {name} v{wanted} from the registry at {tracking_uri()}: {err.message}") \
            from None
    if not passed_parity(target):
        raise RollbackError(f"{name} v{wanted} has no record of passing ONNX parity, so it may not hold {ALIAS}; "
                            "register it through the export stage")
    return target, current


def checked_bundle(name: str, target, dst: str) -> Path:
    """The target's bundle, fetched and proven to answer before anything moves."""
    from serving.predictor import BundleError
    from serving.rollout import load

    bundle = fetch_bundle(name, str(target.version), dst)
    expected = target.tags.get("onnx_sha256")
    if expected and file_sha256(bundle / "model.onnx") != expected:
        raise RollbackError(f"{name} v{target.version}'s model.onnx differs from the one registered (onnx_sha256)")
    try:
        load(bundle, threads=1)
    except BundleError as err:
        raise RollbackError(f"{name} v{target.version}'s bundle does not answer: {err}") from None
    return bundle


def main() -> None:
    import mlflow

    p = parser(__doc__)
    p.add_argument("--to", type=int, metavar="N",
                   help="the registered version to serve (default: the previous champion)")
    p.add_argument("--bundle", default="artifacts/bundle")
    p.add_argument("--metrics", default="metrics")
    p.add_argument("--bento-record", default="artifacts/bento_model.json")
    args = p.parse_args()
    params = load_params(args.params)
    name = params.select.registered_model_name
    # A registry that is down should be a quick refusal, not minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    quiet_mlflow()
    mlflow.set_tracking_uri(tracking_uri())
    client = mlflow.MlflowClient(tracking_uri())
    target, current = choose(client, name, args.to)
    version, before = str(target.version), None if current is None else str(current.version)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = checked_bundle(name, target, tmp)
        if before == version:
            reason, at = f"v{version} already holds {ALIAS}; its bundle was published again", None
        else:
            reason = f"rolled back from v{before}" if args.to is None else f"pinned by rollback --to {version}"
            at = move_champion(client, name, version, "rollback", reason)
            if before is not None:
                client.set_model_version_tag(name, before, ROLLED_BACK_TAG, at)
        replace_dir(bundle, Path(args.bundle))
    record = deploy(Path(args.bundle), params.package, Path(args.bento_record), reason)
    record_in_best(Path(args.metrics) / "best.json", name, target, before, at, reason)
    log.info("rollback: %s@%s is v%s (%s); %s points at it", name, ALIAS, version, reason,
             record["release"]["channel"])


def record_in_best(path: Path, name: str, target, before: str | None, at: str | None, reason: str) -> None:
    best = json.loads(path.read_text()) if path.is_file() else {}
    best["champion"] = {"version": str(target.version), "model": target.tags.get("model"), "run_id": target.run_id,
                        "model_uri": f"models:/{name}/{target.version}"}
    best["rollback"] = {"from": before, "to": str(target.version), "at": at, "reason": reason}
    write_json(path, best)


if __name__ == "__main__":
    run(main)

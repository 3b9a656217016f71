"""Move `champion` back, or pin it to a version, and let every running service follow.

    python -m pipelines.rollback            # back to the last earlier champion not itself rolled back from
    python -m pipelines.rollback --to 3     # to registered version 3

It refuses, naming why, a version that does not exist, one that never passed ONNX parity, one whose bundle
cannot be fetched or does not answer, one with other labels than the services serve, and a registry it cannot
reach; nothing changes then. Otherwise the alias moves (the registry tags both versions with the time, and the
registered model's `champion_history` tag records the move), artifacts/bundle becomes that version's bundle
from its MLflow Model, the BentoML store gets it, and the release channel points at it: services following the
channel switch within their reload interval. metrics/best.json records the rollback. A later `dvc repro` judges
new candidates against the champion as it now stands and never promotes a rolled-back model again by itself
(not even registered anew); `--to N` does, on purpose.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.bundles import fetch_bundle, replace_dir
from pipelines.cli import parser, run
from pipelines.package import deploy
from pipelines.params import Params, load_params
from serving.contract import MODEL_FILE
from training.records import BestRecord, Champion, Rollback
from training.registry import ALIAS, ROLLED_BACK_TAG, current_champion, move_champion, passed_parity, previous_champion
from training.tokenizer import file_sha256
from training.tracking import TrackingError, quiet_mlflow, tracking_uri

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger("textclf.rollback")


class RollbackError(ValueError):
    """The rollback was refused; nothing changed."""


def choose(client, name: str, to: int | None) -> tuple[ModelVersion, ModelVersion | None]:
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


def checked_bundle(name: str, target: ModelVersion, dst: str, channel: Path) -> Path:
    """The target's bundle, fetched and proven to answer, with the labels the services serve, before anything
    moves."""
    from serving.releases import ReleaseError, is_channel, read_release
    from serving.rollout import load

    bundle = fetch_bundle(name, str(target.version), dst)
    expected = target.tags.get("onnx_sha256")
    if expected and file_sha256(bundle / MODEL_FILE) != expected:
        raise RollbackError(f"{name} v{target.version}'s model.onnx differs from the one registered (onnx_sha256)")
    try:
        predictor = load(bundle, threads=1)
    except Exception as err:  # onnxruntime and tokenizers raise their own kinds
        raise RollbackError(f"{name} v{target.version}'s bundle does not answer: {err}") from None
    try:
        served = read_release(channel).labels if is_channel(channel) else None
    except ReleaseError:
        served = None  # nothing published yet: nothing to compare with
    if served is not None and predictor.labels != served:
        raise RollbackError(f"{name} v{target.version} has the labels {list(predictor.labels)}, the services serve "
                            f"{list(served)} and would refuse it; serve it by restarting them on it deliberately")
    return bundle


def main() -> None:
    import mlflow

    p = parser(__doc__, "metrics")
    p.add_argument("--to", type=int, metavar="N",
                   help="the registered version to serve (default: the previous champion)")
    p.add_argument("--bundle", default="artifacts/bundle")
    p.add_argument("--bento-record", default="artifacts/bento_model.json")
    args = p.parse_args()
    params = load_params(args.params)
    name = params.select.registered_model_name
    quiet_mlflow()  # a registry that is down is a quick refusal: one retry, a short timeout
    mlflow.set_tracking_uri(tracking_uri())
    client = mlflow.MlflowClient(tracking_uri())
    target, current = choose(client, name, args.to)
    with tempfile.TemporaryDirectory() as tmp:  # everything that can refuse happens before the alias moves
        bundle = checked_bundle(name, target, tmp, Path(params.package.release_channel))
        commit(client, name, target, current, bundle, args, params, pinned=args.to is not None)


def commit(client, name: str, target: ModelVersion, current: ModelVersion | None, bundle: Path,
           args: argparse.Namespace, params: Params, pinned: bool) -> None:
    """Move the alias and tag both versions, then write the files the services follow."""
    version, before = str(target.version), None if current is None else str(current.version)
    if before == version:
        reason, at = f"v{version} already holds {ALIAS}; its bundle was published again", None
    else:
        reason = f"pinned by rollback --to {version}" if pinned or before is None else f"rolled back from v{before}"
        at = move_champion(client, name, version, "rollback", reason)
    try:
        if at is not None and before is not None:
            client.set_model_version_tag(name, before, ROLLED_BACK_TAG, at)
        replace_dir(bundle, Path(args.bundle))
        record = deploy(Path(args.bundle), params.package, Path(args.bento_record), reason)
        record_in_best(args.metrics / "best.json", name, target, before, at, reason)
    except Exception as err:
        raise RollbackError(f"{name}@{ALIAS} is v{version} now, but publishing it failed ({err!r}); rerun "
                            f"`python -m pipelines.rollback --to {version}` to finish") from err
    log.info("rollback: %s@%s is v%s (%s); %s points at it", name, ALIAS, version, reason,
             record["release"]["channel"])


def record_in_best(path: Path, name: str, target: ModelVersion, before: str | None, at: str | None,
                   reason: str) -> None:
    """metrics/best.json names the champion as it now stands and the rollback that made it so."""
    try:
        best = BestRecord.read(path)
    except FileNotFoundError:  # no export ran here: the registry's champion_history has the move on record
        log.warning("rollback: %s not found, so the rollback is recorded in the registry only", path)
        return
    rollback = Rollback(from_=before, to=str(target.version), at=at, reason=reason)
    best.model_copy(update={"champion": Champion.of(target, name), "rollback": rollback}).write(path)


if __name__ == "__main__":
    run(main)

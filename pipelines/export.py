"""Stage export: the selected candidate → ONNX bundle → parity check → MLflow Model → registry → `champion`.

1. The candidate (metrics/candidate.json, from select) is exported to ONNX beside its tokenizer and meta.json,
   and ONNX Runtime's probabilities are checked against PyTorch's on the test texts.
2. Only a bundle that passed parity is logged on the candidate's MLflow run as a pyfunc MLflow Model
   (onnxruntime + tokenizers, no torch) with a signature, and registered as a new model version.
3. Only a version that also passed select's gate gets the alias `champion`.
4. artifacts/bundle always holds the champion's bundle, which `package` publishes to the release channel that
   running services follow. A failed parity or gate leaves the old champion and its bundle in place;
   metrics/best.json says why. A version that `pipelines.rollback` moved away from is never promoted again here.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pipelines.bundles import champion_bundle, replace_dir, stamp
from pipelines.cli import parser, run
from pipelines.params import Params, load_params
from serving.contract import MODEL_FILE, TOKENIZER_FILE, BundleMeta, encode, read_meta, write_meta
from training.export import ExportError, check_parity, export_onnx
from training.jsonio import write_json
from training.prepare import iter_texts
from training.records import BestRecord, CandidateRecord, Champion, Decision, Parity
from training.registry import (
    ALIAS,
    PARITY_TAG,
    ROLLED_BACK_TAG,
    current_champion,
    fingerprint,
    gate,
    log_bundle_model,
    move_champion,
    register,
    rolled_back_twin,
)
from training.tokenizer import file_sha256
from training.tracking import quiet_mlflow, tracking_uri

log = logging.getLogger("textclf.export")
CANDIDATE_VERSION = "candidate"  # meta.json's version until the registry gives it a number
# Test texts the ONNX graph is checked against PyTorch on (the first of the shuffled split; all of a small one).
PARITY_TEXTS = 20_000


class NothingToServeError(ValueError):
    """The candidate was not promoted and there is no earlier champion to serve instead."""


def build_bundle(pick: CandidateRecord, models: Path, data: Path, staged: Path, opset: int, atol: float,
                 run_data) -> Parity:
    """Export the candidate select picked into `staged` and check parity; returns the parity result (raises
    ExportError when ONNX and PyTorch disagree)."""
    from tokenizers import Tokenizer

    from training.calibration import Calibrated
    from training.ensemble import load_candidate

    model_name = pick.model
    model, labels = load_candidate(models, model_name, pick.members)
    # The temperature evaluate fitted on val lives in the graph: parity is checked on what is served.
    model = Calibrated(model, pick.calibration.temperature)
    staged.mkdir(parents=True)
    shutil.copy(data / TOKENIZER_FILE, staged / TOKENIZER_FILE)
    tokenizer = Tokenizer.from_file(str(staged / TOKENIZER_FILE))
    tokenizer_sha = file_sha256(staged / TOKENIZER_FILE)
    # No registry version inside the ONNX file: the same checkpoint always gives the same model.onnx.
    export_onnx(model, staged / MODEL_FILE, {
        "labels": json.dumps(labels, ensure_ascii=False), "model_name": model_name,
        "tokenizer_sha256": tokenizer_sha}, opset)
    write_meta(staged, BundleMeta(
        model_name=model_name, version=CANDIDATE_VERSION, labels=labels, max_len=tokenizer.truncation["max_length"],
        metrics={k: v for k, v in run_data.metrics.items() if k.endswith("_final")},
        calibration=pick.calibration.model_dump(), data_hash=run_data.tags.get("data_hash"),
        git_commit=run_data.tags.get("git_commit"),
        created=datetime.now(UTC).isoformat(timespec="seconds"), tokenizer_sha256=tokenizer_sha))
    texts = list(iter_texts(data / "test.parquet", PARITY_TEXTS))
    return Parity(**check_parity(model, staged / MODEL_FILE, encode(tokenizer, texts), atol), passed=True)


def main() -> None:
    import mlflow

    p = parser(__doc__, "data", "models", "metrics")
    p.add_argument("--out", default="artifacts/bundle")
    args = p.parse_args()
    all_params = load_params(args.params)
    quiet_mlflow()
    client = mlflow.MlflowClient(tracking_uri())
    mlflow.set_tracking_uri(tracking_uri())
    pick = CandidateRecord.read(args.metrics / "candidate.json")
    name, out = pick.registered_model, Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        decision = export_candidate(client, all_params, pick, Path(tmp) / "bundle", args.models, args.data, out)
    champion = current_champion(client, name)
    BestRecord(**{**dict(pick), **dict(decision), "champion": None if champion is None else Champion.of(champion, name)}
               ).write(args.metrics / "best.json")
    write_json(args.metrics / "export.json", {"parity": decision.parity.model_dump(), "model": pick.model,
                                              "version": decision.registered_version})
    if champion is None:
        raise NothingToServeError(f"nothing to serve: {pick.model} was not promoted ({decision.reason}) and '{name}' "
                                  f"has no {ALIAS} yet (see metrics/best.json)")
    champion_bundle(client, champion, name, out)
    log.info("export: %s %s; %s@%s is v%s (%s) → %s", pick.model, "promoted" if decision.promoted else "not promoted",
             name, ALIAS, champion.version, decision.reason, out)


def export_candidate(client, params: Params, pick: CandidateRecord, staged: Path, models: Path, data: Path,
                     out: Path) -> Decision:
    """Build and check the bundle; only one that passed parity is registered, and then may be promoted."""
    run_data = candidate_run(client, pick.run_id)
    try:
        parity = build_bundle(pick, models, data, staged, params.export.opset, params.export.parity_atol, run_data)
    except ExportError as err:
        return Decision(parity=Parity(passed=False, error=str(err)), reason=f"ONNX export failed parity: {err}")
    client.log_metric(pick.run_id, "onnx_parity_max_abs_diff", parity.max_abs_diff)
    version = register_version(client, pick, staged, run_data, data, parity.max_abs_diff)
    why_not = why_not_promoted(client, params.select.min_val_f1, pick, version)
    if why_not is None:
        move_champion(client, pick.registered_model, str(version.version), "export", pick.reason)
        replace_dir(staged, out)
    return Decision(parity=parity, registered_version=str(version.version), promoted=why_not is None,
                    reason=why_not or pick.reason)


def why_not_promoted(client, min_val_f1: float, pick: CandidateRecord, version) -> str | None:
    """Why the registered version may not take the alias, or None: select's gate, then no rollback undone, then
    the gate judged again against the champion as it is now (it may have moved since select ran)."""
    name = pick.registered_model
    if not pick.gate_passed:
        return pick.reason
    twin = rolled_back_twin(client, name, version)
    if twin is not None:  # a rerun must not silently undo a rollback
        return (f"v{version.version} is the model of v{twin.version}, which was rolled back at "
                f"{twin.tags[ROLLED_BACK_TAG]}; `python -m pipelines.rollback --to {version.version}` serves it again")
    passed, now = gate(pick.val.macro_f1, min_val_f1, current_champion(client, name), pick.data_hash)
    return None if passed else now


def candidate_run(client, run_id: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id).data
    except MlflowException:
        raise FileNotFoundError(f"the candidate's MLflow run {run_id} is not in {tracking_uri()}: rerun the "
                                "train stages against this store (dvc repro -f train)") from None


def register_version(client, pick: CandidateRecord, staged: Path, run_data, data: Path, parity: float):
    """Log the bundle as an MLflow Model on the candidate's run and register it, once per run and fingerprint
    (bundle files, pyfunc code, requirements)."""
    name, run_id, print_ = pick.registered_model, pick.run_id, fingerprint(staged)
    onnx_sha = file_sha256(staged / MODEL_FILE)
    for version in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
        if version.tags.get("fingerprint") == print_:  # a rerun of the same candidate: no second version
            stamp(staged, version=str(version.version), mlflow_run_id=run_id, registered_model=name,
                  model_uri=f"models:/{name}/{version.version}")
            return version
    versions = [int(v.version) for v in client.search_model_versions(f"name = '{name}'")]
    # The number the registry should give next, stamped into the logged meta.json; a bundle fetched from the
    # registry is stamped again with the real one (champion_bundle), so a wrong guess never reaches serving.
    expected = str(max(versions, default=0) + 1)
    stamp(staged, version=expected, mlflow_run_id=run_id, registered_model=name)
    metrics = {k: v for k, v in run_data.metrics.items() if k.startswith(("val_", "test_")) and k.endswith("_final")}
    tags = {"model": pick.model, "data_hash": pick.data_hash, "val_macro_f1": str(pick.val.macro_f1),
            "test_macro_f1": str(pick.test.macro_f1), "onnx_sha256": onnx_sha, "fingerprint": print_,
            PARITY_TAG: f"{parity:.3g}", "temperature": str(pick.calibration.temperature),
            "test_ece": str(pick.calibration.test_ece)}
    info = log_bundle_model(run_id, staged, list(read_meta(staged).labels), metrics, data, tags)
    version = register(name, info.model_uri, tags)
    stamp(staged, version=str(version.version), model_uri=f"models:/{name}/{version.version}")
    return version


if __name__ == "__main__":
    run(main)

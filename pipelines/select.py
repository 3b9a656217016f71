"""Stage select: pick the best candidate by validation macro-F1 (never test) and judge it by the gate.

The candidates are params.yaml's train.models and their ensemble; each one's record,
metrics/checks/<candidate>.json, holds its val/test scores, its behavioural pass rates and its MLflow run
(written by evaluate, or by ensemble). Candidates below the behavioural floors are passed over. The
choice and the gate's verdict go to `metrics/candidate.json`; the alias moves later, in the export stage,
and only after its parity check. When no candidate passes the behavioural floors and there is no
champion yet, the stage fails, so the pipeline stops before export.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pipelines.cli import parser, run
from pipelines.params import load_params
from training.choice import Option, cheapest_within
from training.jsonio import write_json
from training.registry import current_champion, gate
from training.tracking import data_hash, quiet_mlflow, tracking_uri

log = logging.getLogger("textclf.select")


class NoCandidateError(ValueError):
    """No candidate passes the behavioural floors and no champion exists to fall back on."""


def choose(records: dict[str, dict], tolerance: float = 0.0) -> tuple[str, str | None, str]:
    """Among candidates that pass the behavioural floors: the best by val macro-F1, or the cheapest to serve
    of those within `tolerance` of it (ties: the first listed).

    Returns (model, None, why chosen), or (best by val, why none passes, why) when every candidate is below a floor.
    """
    ranked = sorted(records, key=lambda m: records[m]["val"]["macro_f1"], reverse=True)
    passing = [m for m in records if records[m]["passed"]]
    if passing:
        options = [Option(m, records[m]["val"]["macro_f1"], records[m].get("cost_ms_per_text")) for m in passing]
        chosen, why = cheapest_within(options, tolerance)
        return chosen.name, None, why
    return (ranked[0], "no candidate passes the behavioural floors: " + below_floor_report(ranked, records),
            "best val macro-F1")


def below_floor_report(models: list[str], checks: dict[str, dict]) -> str:
    return "; ".join(f"{m} ({', '.join(checks[m]['below_floor'])}; failed {failed_cases(checks[m])})" for m in models)


def failed_cases(check: dict, limit: int = 8) -> str:
    cases = [f"{c['id']} {c['text']!r}" for c in check["failed"]]
    return ", ".join(cases[:limit]) + (f" and {len(cases) - limit} more" if len(cases) > limit else "")


def read_records(folder: Path, candidates: list[str]) -> dict[str, dict]:
    missing = [c for c in candidates if not (folder / f"{c}.json").is_file()]
    if missing:
        stage = "ensemble" if missing[0] == "ensemble" else f"evaluate@{missing[0]}"
        raise FileNotFoundError(f"{folder / missing[0]}.json not found: run `dvc repro {stage}` first")
    return {c: json.loads((folder / f"{c}.json").read_text()) for c in candidates}


def main() -> None:
    import mlflow

    p = parser(__doc__)
    p.add_argument("--metrics", default="metrics")
    p.add_argument("--data", default="data/processed")
    args = p.parse_args()
    all_params = load_params(args.params)
    params, candidates = all_params.select, all_params.train.candidates
    quiet_mlflow()
    records = read_records(Path(args.metrics) / "checks", candidates)
    best, behaviour, why = choose(records, params.tolerance)
    val_f1 = records[best]["val"]["macro_f1"]
    run_id = records[best]["mlflow_run_id"]
    digest = data_hash(args.data)
    client = mlflow.MlflowClient(tracking_uri())
    champion = current_champion(client, params.registered_model_name)
    promoted, reason = gate(val_f1, params.min_val_f1, champion, digest)
    if behaviour is not None:
        promoted, reason = False, behaviour
    skipped = [m for m in candidates if not records[m]["passed"] and m != best]
    if behaviour is None and skipped:  # a better-scoring candidate may have been passed over: say why
        reason += "; below the behavioural floors: " + below_floor_report(skipped, records)
    summary = {
        "model": best, **({"members": records[best]["members"]} if "members" in records[best] else {}),
        "val": records[best]["val"], "test": records[best]["test"], "calibration": records[best]["calibration"],
        "chosen_because": why, "run_id": run_id, "gate_passed": promoted, "reason": reason, "data_hash": digest,
        "registered_model": params.registered_model_name,
        "champion": None if champion is None else {
            "version": str(champion.version), "model": champion.tags.get("model"), "run_id": champion.run_id},
        "candidates": {m: {**records[m]["val"], "checks_passed": records[m]["passed"],
                           "check_pass_rate": records[m]["pass_rate"],
                           "test_ece": records[m]["calibration"]["test_ece"],
                           "cost_ms_per_text": records[m].get("cost_ms_per_text")} for m in candidates},
    }
    write_json(Path(args.metrics) / "candidate.json", summary)
    if behaviour is not None and champion is None:
        raise NoCandidateError(f"{reason}. Nothing to export: fix the model or the checklist, or lower check.floors")
    log.info("select: %s (val macro-F1 %.4f, %s) %s", best, val_f1, why, reason)


if __name__ == "__main__":
    run(main)

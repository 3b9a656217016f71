"""Stage select: pick the best candidate by validation macro-F1 (never test) and judge it by the gate.

Candidates below the behavioural floors (stage check) are passed over. The choice and the gate's verdict
go to `metrics/candidate.json`; the alias moves later, in the export stage, and only after its parity
check. When no candidate passes the behavioural floors and there is no champion yet, the stage fails, so
the pipeline stops before export.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pipelines.cli import parser, run, write_json
from pipelines.params import CANDIDATES, load_params
from training.registry import current_champion, gate
from training.tracking import data_hash, quiet_mlflow, tracking_uri

log = logging.getLogger("textclf.select")


class NoCandidateError(ValueError):
    """No candidate passes the behavioural floors and no champion exists to fall back on."""


def choose(scores: dict[str, dict], checks: dict[str, dict]) -> tuple[str, str | None]:
    """The best candidate by val macro-F1 among those that pass the behavioural floors.

    Returns (model, None), or (best by val, why none passes) when every candidate is below a floor.
    """
    ranked = sorted(scores, key=lambda m: scores[m]["val"]["macro_f1"], reverse=True)
    passing = [m for m in ranked if checks[m]["passed"]]
    if passing:
        return passing[0], None
    return ranked[0], "no candidate passes the behavioural floors: " + below_floor_report(ranked, checks)


def below_floor_report(models: list[str], checks: dict[str, dict]) -> str:
    return "; ".join(f"{m} ({', '.join(checks[m]['below_floor'])}; failed {failed_cases(checks[m])})" for m in models)


def failed_cases(check: dict, limit: int = 8) -> str:
    cases = [f"{c['id']} {c['text']!r}" for c in check["failed"]]
    return ", ".join(cases[:limit]) + (f" and {len(cases) - limit} more" if len(cases) > limit else "")


def main() -> None:
    import mlflow

    p = parser(__doc__)
    p.add_argument("--metrics", default="metrics")
    p.add_argument("--models", default="models")
    p.add_argument("--data", default="data/processed")
    args = p.parse_args()
    params = load_params(args.params).select
    quiet_mlflow()
    scores = {m: json.loads((Path(args.metrics) / f"{m}.json").read_text()) for m in CANDIDATES}
    checks = {m: json.loads((Path(args.metrics) / "checks" / f"{m}.json").read_text()) for m in CANDIDATES}
    best, behaviour = choose(scores, checks)
    val_f1 = scores[best]["val"]["macro_f1"]
    run_id = json.loads((Path(args.models) / best / "train.json").read_text())["mlflow_run_id"]
    digest = data_hash(args.data)
    client = mlflow.MlflowClient(tracking_uri())
    champion = current_champion(client, params.registered_model_name)
    promoted, reason = gate(val_f1, params.min_val_f1, champion, digest)
    if behaviour is not None:
        promoted, reason = False, behaviour
    skipped = [m for m in CANDIDATES if not checks[m]["passed"] and m != best]
    if behaviour is None and skipped:  # a better-scoring candidate may have been passed over: say why
        reason += "; below the behavioural floors: " + below_floor_report(skipped, checks)
    summary = {
        "model": best, "val": _headline(scores[best]["val"]), "test": _headline(scores[best]["test"]),
        "run_id": run_id, "gate_passed": promoted, "reason": reason, "data_hash": digest,
        "registered_model": params.registered_model_name,
        "champion": None if champion is None else {
            "version": str(champion.version), "model": champion.tags.get("model"), "run_id": champion.run_id},
        "candidates": {m: {**_headline(scores[m]["val"]), "checks_passed": checks[m]["passed"],
                           "check_pass_rate": checks[m]["pass_rate"]} for m in CANDIDATES},
    }
    write_json(Path(args.metrics) / "candidate.json", summary)
    if behaviour is not None and champion is None:
        raise NoCandidateError(f"{reason}. Nothing to export: fix the model or the checklist, or lower check.floors")
    log.info("select: %s (val macro-F1 %.4f) %s", best, val_f1, reason)


def _headline(split: dict) -> dict:
    return {"accuracy": split["accuracy"], "macro_f1": split["macro_f1"]}


if __name__ == "__main__":
    run(main)

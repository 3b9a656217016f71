"""Stage select: pick the best candidate by validation macro-F1 (never test) and judge it by the gate.

The candidates are params.yaml's train.models and their ensemble; each one's record,
metrics/checks/<candidate>.json, holds its val/test scores, its behavioural pass rates and its MLflow run
(written by evaluate, or by ensemble). Candidates below the behavioural floors are passed over. The
choice and the gate's verdict go to `metrics/candidate.json`; the alias moves later, in the export stage,
and only after its parity check. When no candidate passes the behavioural floors and there is no
champion yet, the stage fails, so the pipeline stops before export.
"""

from __future__ import annotations

import logging

from pipelines.cli import parser, run
from pipelines.params import load_params
from training.choice import Option, cheapest_within
from training.records import CandidateRecord, Champion, CheckRecord
from training.registry import current_champion, gate
from training.tracking import data_hash, quiet_mlflow, tracking_uri

log = logging.getLogger("textclf.select")


class NoCandidateError(ValueError):
    """No candidate passes the behavioural floors and no champion exists to fall back on."""


def choose(records: dict[str, CheckRecord], tolerance: float = 0.0) -> tuple[str, str | None, str]:
    """Among candidates that pass the behavioural floors: the best by val macro-F1, or the cheapest to serve
    of those within `tolerance` of it (ties: the first listed).

    Returns (model, None, why chosen), or (best by val, why none passes, why) when every candidate is below a floor.
    """
    options = [Option(m, r.val.macro_f1, r.cost_ms_per_text) for m, r in records.items() if r.passed]
    if options:
        chosen, why = cheapest_within(options, tolerance)
        return chosen.name, None, why
    ranked = sorted(records, key=lambda m: records[m].val.macro_f1, reverse=True)
    return (ranked[0], "no candidate passes the behavioural floors: " + below_floor_report(ranked, records),
            "best val macro-F1")


def below_floor_report(models: list[str], records: dict[str, CheckRecord]) -> str:
    return "; ".join(f"{m} ({', '.join(records[m].below_floor)}; failed {failed_cases(records[m])})" for m in models)


def failed_cases(record: CheckRecord, limit: int = 8) -> str:
    cases = [f"{c['id']} {c['text']!r}" for c in record.failed]
    return ", ".join(cases[:limit]) + (f" and {len(cases) - limit} more" if len(cases) > limit else "")


def main() -> None:
    import mlflow

    args = parser(__doc__, "metrics", "data").parse_args()
    all_params = load_params(args.params)
    params, candidates = all_params.select, all_params.train.candidates
    quiet_mlflow()
    records = {c: CheckRecord.read(args.metrics / "checks" / f"{c}.json") for c in candidates}
    best, behaviour, why = choose(records, params.tolerance)
    chosen, digest = records[best], data_hash(args.data)
    champion = current_champion(mlflow.MlflowClient(tracking_uri()), params.registered_model_name)
    promoted, reason = gate(chosen.val.macro_f1, params.min_val_f1, champion, digest)
    if behaviour is not None:
        promoted, reason = False, behaviour
    skipped = [m for m in candidates if not records[m].passed and m != best]
    if behaviour is None and skipped:  # a better-scoring candidate may have been passed over: say why
        reason += "; below the behavioural floors: " + below_floor_report(skipped, records)
    CandidateRecord(
        model=best, members=chosen.members, val=chosen.val, test=chosen.test, calibration=chosen.calibration,
        chosen_because=why, run_id=chosen.mlflow_run_id, gate_passed=promoted, reason=reason, data_hash=digest,
        registered_model=params.registered_model_name, champion=None if champion is None else Champion.of(champion),
        candidates={m: records[m].standing() for m in candidates},
    ).write(args.metrics / "candidate.json")
    if behaviour is not None and champion is None:
        raise NoCandidateError(f"{reason}. Nothing to export: fix the model or the checklist, or lower check.floors")
    log.info("select: %s (val macro-F1 %.4f, %s) %s", best, chosen.val.macro_f1, why, reason)


if __name__ == "__main__":
    run(main)

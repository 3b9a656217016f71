"""Drift and health report over what the service logged: `python -m pipelines.monitor [--since ISO] [--until ISO]`.

Compares the window's predictions (default: the last 24 hours) with the train split by the thresholds in
params.yaml's `monitor` section, writes metrics/monitor.json and an HTML report under reports/, and logs both to
MLflow (experiment `textclf-<dataset>-monitoring`). Exit 0: healthy; 1: drift detected; 2: bad input (for cron and CI).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from monitoring.drift import MIN_ROWS
from monitoring.feedback_data import review_queue
from monitoring.html_report import render
from monitoring.monitor import Traffic, run_checks, summarise
from monitoring.reference import load_reference
from monitoring.window import store_url, window
from pipelines.cli import parser, run
from pipelines.params import load_params
from serving.predictor import OnnxPredictor
from serving.store import Store
from training.jsonio import write_json
from training.tracking import dataset_name

log = logging.getLogger("textclf.monitor")


def log_to_mlflow(summary: dict, report: Path, source: str) -> str:
    """One run per report in `textclf-<dataset>-monitoring`: every check's figure and verdict, the HTML."""
    import mlflow

    from training.tracking import ensure_experiment, quiet_mlflow

    quiet_mlflow()
    experiment = ensure_experiment(f"textclf-{dataset_name(source)}-monitoring")
    name = f"monitor {summary['window']['since']} → {summary['window']['until']}"
    with mlflow.start_run(experiment_id=experiment, run_name=name) as active:
        metrics = {"rows": summary["rows"], "drift_detected": float(summary["drift_detected"])}
        for check in summary["checks"].values():
            if check["figure"] is not None:
                metrics[f"{check['name']}.figure"] = check["figure"]
                metrics[f"{check['name']}.drifted"] = float(check["drifted"])
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"window.since": summary["window"]["since"], "window.until": summary["window"]["until"],
                         "drifted": ",".join(summary["drifted"]) or "none", "models": ", ".join(summary["models"])})
        mlflow.log_artifact(str(report))
        return active.info.run_id


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--since", help="ISO-8601 start (default: 24 hours before --until)")
    p.add_argument("--until", help="ISO-8601 end (default: now)")
    p.add_argument("--store", help="store URL (default: TEXTCLF_FEEDBACK_URL, else sqlite:///feedback.db)")
    p.add_argument("--bundle", type=Path, default=Path("artifacts/bundle"), help="the served bundle")
    p.add_argument("--data", type=Path, default=Path("data/processed"), help="the splits (train is the reference)")
    p.add_argument("--out", type=Path, default=Path("metrics/monitor.json"))
    p.add_argument("--reports", type=Path, default=Path("reports"), help="folder for the HTML report")
    p.add_argument("--queue", type=int, default=20, help="least confident predictions listed in the report")
    args = p.parse_args()
    params = load_params(args.params)
    span = window(args.since, args.until)
    store = Store(store_url(args.store))
    traffic = Traffic.of_store(store, span)
    if traffic.rows < MIN_ROWS:
        raise ValueError(f"only {traffic.rows} prediction(s) logged from {span.as_dict()['since']} to "
                         f"{span.as_dict()['until']}; a report needs at least {MIN_ROWS}: widen --since")
    predictor = OnnxPredictor(args.bundle)
    reference = load_reference(args.data, predictor)
    queue = review_queue(store, span.since, span.until, args.queue)
    summary = summarise(span, traffic, run_checks(reference, traffic, params.monitor), queue)
    args.reports.mkdir(parents=True, exist_ok=True)
    stamp = summary["window"]["until"].replace(":", "").replace("-", "")
    report = args.reports / f"monitor-{stamp}.html"
    report.write_text(render(summary, reference, traffic), encoding="utf-8")
    summary["report"] = str(report)
    summary["mlflow_run_id"] = log_to_mlflow(summary, report, params.data.source)
    write_json(args.out, summary)
    figures = ", ".join(f"{c['name']} {c['figure']:.3f}{'!' if c['drifted'] else ''}"
                        for c in summary["checks"].values() if c["figure"] is not None)
    log.info("monitor: %d predictions, %s; %s; report %s", traffic.rows,
             "DRIFT in " + ", ".join(summary["drifted"]) if summary["drift_detected"] else "no drift", figures, report)
    if summary["drift_detected"]:
        sys.exit(1)


if __name__ == "__main__":
    run(main)

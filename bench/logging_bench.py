"""What logging every prediction costs: the champion served with TEXTCLF_LOG_PREDICTIONS on and off, same run.

wrk with 32 connections posts real reviews; the two settings alternate (on, off, on, off, ...) so a machine
that speeds up or slows down during the run weighs on both; medians of the rounds are compared. Also counts
the logged rows against the texts answered, so a fast but lossy log would show. Writes
bench/results/logging.json.

    python -m bench.logging_bench --bundle artifacts/bundle
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

from bench.serve_bench import BIN, REPO, Served, review_texts, run_wrk, write_bodies


def measure(bundle: Path, work: Path, log_on: bool, bodies: Path, seconds: int, round_no: int) -> dict:
    db = work / f"feedback-{round_no}-{int(log_on)}.db"
    env = {"TEXTCLF_BUNDLE": str(bundle), "TEXTCLF_LOG_PREDICTIONS": str(log_on).lower(),
           "TEXTCLF_FEEDBACK_URL": f"sqlite:///{db}", "BENTOML_HOME": str(work / "bentoml"),
           "BENTOML_DO_NOT_TRACK": "true"}
    server = Served([str(BIN / "bentoml"), "serve", "serving.service:Classifier", "--host", "127.0.0.1", "--port",
                     "{port}"], env, work / f"serve-{round_no}-{int(log_on)}.log")
    try:
        run_wrk(server.url, bodies, 32, 3)  # warm-up, not counted
        result = run_wrk(server.url, bodies, 32, seconds)
    finally:
        server.stop()
    logged = sqlite3.connect(db).execute("SELECT count(*) FROM predictions").fetchone()[0] if db.exists() else 0
    return {"log": log_on, "rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
            "errors": result.errors, "requests": result.requests, "rows_logged": logged}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, default=REPO / "artifacts/bundle")
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--texts-per-request", type=int, nargs="+", default=[1, 16])
    p.add_argument("--out", type=Path, default=REPO / "bench/results/logging.json")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="logging_bench_"))
    texts = review_texts()
    results = {}
    for per_request in args.texts_per_request:
        bodies = write_bodies(work / f"bodies-{per_request}.jsonl", texts, per_request)
        runs = [measure(args.bundle, work, log_on, bodies, args.seconds, i)
                for i in range(args.rounds) for log_on in (True, False)]
        # Medians: one round disturbed by the machine (it happens on a shared 2-core box) moves neither.
        on = statistics.median(r["rps"] for r in runs if r["log"])
        off = statistics.median(r["rps"] for r in runs if not r["log"])
        results[str(per_request)] = {"runs": runs, "rps_on": on, "rps_off": off, "ratio": on / off}
        print(f"{per_request} text(s)/request: logging on {on:.1f} req/s, off {off:.1f} req/s, ratio {on / off:.3f}",
              file=sys.stderr)
    args.out.write_text(json.dumps({"bundle": str(args.bundle), "connections": 32, "seconds": args.seconds,
                                    "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()

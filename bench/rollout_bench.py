"""What a switch of champion costs a running service, and how fast two services follow one alias.

Works on a copy of the registry (mlflow.db; the artifacts are read where they are) and its own release
channel, BentoML store and metrics, so the checkout's champion never moves. Two services follow the channel
at the default reload interval. Each round:

1. wrk (32 connections) on service 1 for --seconds with no switch: req/s, p99, peak memory;
2. the same again while `python -m pipelines.rollback` moves `champion` to the other version a quarter of the
   way in: req/s, p99, errors, peak memory (two models loaded in a worker for a moment);
3. from the alias move (the registry's `champion_taken_at` tag) to the first answer by the new version on
   each service, seen by a light poller (20 requests/s per service) reading X-Model-Version.

Rounds alternate the two versions; medians are reported. Writes bench/results/rollout.json.

    python -m bench.rollout_bench --versions 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import yaml

from bench.serve_bench import BIN, REPO, Served, review_texts, run_wrk, write_bodies


class Watch(threading.Thread):
    """Polls one service: the time of the first answer by each version; samples its memory."""

    def __init__(self, server: Served) -> None:
        super().__init__(daemon=True)
        self.server, self.first_seen, self.rss_peak = server, {}, 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=30) as http:
            while not self.stop.is_set():
                try:
                    answer = http.post("/classify", json={"texts": ["这本书很好看"]})
                except httpx.HTTPError:
                    answer = None
                if answer is not None and answer.status_code == 200:
                    self.first_seen.setdefault(answer.headers.get("x-model-version"), time.time())
                self.rss_peak = max(self.rss_peak, self.server.rss_mb()[0])
                time.sleep(0.05)


def rollback(env: dict[str, str], work: Path, to: str) -> float:
    """Move champion to `to` in the copied registry; the alias move's time (epoch) from the registry's tag."""
    subprocess.run([sys.executable, "-m", "pipelines.rollback", "--to", to, "--params", str(work / "params.yaml"),
                    "--bundle", str(work / "bundle"), "--metrics", str(work / "metrics"),
                    "--bento-record", str(work / "bento_model.json")],
                   cwd=REPO, env=env, check=True, capture_output=True)
    import mlflow

    taken = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"]).get_model_version("textclf", to).tags["champion_taken_at"]
    return datetime.fromisoformat(taken).timestamp()


def phase(server: Served, watches: list[Watch], bodies: Path, seconds: int, switch=None) -> dict:
    """wrk on `server` for `seconds`; `switch()` runs a quarter of the way in. Peak memory over the phase."""
    for watch in watches:
        watch.rss_peak = 0.0
        watch.first_seen.clear()
    mover = threading.Timer(seconds / 4, switch) if switch else None
    if mover:
        mover.start()
    result = run_wrk(server.url, bodies, 32, seconds)
    if mover:
        mover.join()
    time.sleep(1)
    return {"rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "errors": result.errors,
            "requests": result.requests, "rss_peak_mb": [round(w.rss_peak, 1) for w in watches]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--versions", nargs=2, default=["1", "2"], help="two registered versions that passed parity")
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=REPO / "bench/results/rollout.json")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rollout_bench_"))
    shutil.copy(REPO / "mlflow.db", work / "mlflow.db")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["package"]["release_channel"] = str(work / "releases")
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
           "BENTOML_HOME": str(work / "bentoml"), "BENTOML_DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}
    a, b = args.versions
    rollback(env, work, a)
    servers = [Served([str(BIN / "bentoml"), "serve", "serving.service:Classifier", "--host", "127.0.0.1", "--port",
                       "{port}"], {**env, "TEXTCLF_BUNDLE": str(work / "releases"),
                                   "TEXTCLF_FEEDBACK_URL": f"sqlite:///{work / f'feedback-{i}.db'}"},
                      work / f"serve-{i}.log") for i in (1, 2)]
    watches = [Watch(s) for s in servers]
    for watch in watches:
        watch.start()
    bodies = write_bodies(work / "bodies.jsonl", review_texts(), 1)
    rounds = []
    try:
        run_wrk(servers[0].url, bodies, 32, 3)  # warm-up, not counted
        current = a
        for _ in range(args.rounds):
            target = b if current == a else a
            steady = phase(servers[0], watches, bodies, args.seconds)
            moved: list[float] = []
            switching = phase(servers[0], watches, bodies, args.seconds,
                              switch=lambda target=target, moved=moved: moved.append(rollback(env, work, target)))
            follow_s = [round(w.first_seen[target] - moved[0], 2) for w in watches]
            rounds.append({"to": target, "steady": steady, "switch": switching, "alias_to_first_answer_s": follow_s})
            print(f"→ v{target}: steady {steady['rps']:.0f} req/s p99 {steady['p99_ms']:.0f} ms; switching "
                  f"{switching['rps']:.0f} req/s p99 {switching['p99_ms']:.0f} ms, errors {switching['errors']}; "
                  f"first answer after {follow_s} s; peak RSS {steady['rss_peak_mb']} → {switching['rss_peak_mb']} MB",
                  file=sys.stderr)
            current = target
    finally:
        for watch in watches:
            watch.stop.set()
        for server in servers:
            server.stop()

    def median(key: str, sub: str, i: int | None = None) -> float:
        values = [r[key][sub] if i is None else r[key][sub][i] for r in rounds]
        return round(statistics.median(values), 2)

    summary = {
        "steady_rps": median("steady", "rps"), "switch_rps": median("switch", "rps"),
        "steady_p99_ms": median("steady", "p99_ms"), "switch_p99_ms": median("switch", "p99_ms"),
        "switch_errors": sum(r["switch"]["errors"] for r in rounds),
        "alias_to_first_answer_s": [statistics.median(r["alias_to_first_answer_s"][i] for r in rounds)
                                    for i in (0, 1)],
        "steady_rss_peak_mb": median("steady", "rss_peak_mb", 0),
        "switch_rss_peak_mb": median("switch", "rss_peak_mb", 0),
    }
    summary["rps_ratio"] = round(summary["switch_rps"] / summary["steady_rps"], 3)
    args.out.write_text(json.dumps({"versions": args.versions, "seconds": args.seconds, "connections": 32,
                                    "reload_interval_s": 5, "summary": summary, "rounds": rounds}, indent=2) + "\n")
    print(json.dumps(summary, indent=2), file=sys.stderr)


if __name__ == "__main__":
    main()

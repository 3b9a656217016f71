"""What a switch of champion costs a running service, and how fast two services follow one alias.

Works on a copy of the registry (mlflow.db; the artifacts are read where they are) with its own release
channel, BentoML store and metrics, so the checkout's champion never moves. Two services follow the channel
at the default reload interval (5 s); wrk (32 connections, one review per request) drives service 1, and a
light poller (about 20 requests/s) on each service notes when each version first answers (X-Model-Version)
and samples the service's resident memory. Each round, serving version A:

1. steady: wrk for --seconds, no switch;
2. rollback: the same, with `python -m pipelines.rollback --to B` started 2 s in: a switch as users make it,
   the rollback process (MLflow, download, check, BentoML store) sharing the 2 cores; the time from the alias
   move (the registry's `champion_taken_at` tag) to the first answer by B on each service;
3. publish: the same, with A's bundle published to the channel 2 s in: the service's own cost of a switch
   (nothing else runs); then, untimed, the alias goes back to A.

Then a soak switches service 1 between the two bundles --swaps times, 7 s apart, and records its resident
memory after each switch, so a model that is never freed would show. Medians of the rounds. Writes
bench/results/rollout.json.

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
from serving.releases import publish


class Watch(threading.Thread):
    """Polls one service: the time of the first answer by each version; samples its memory."""

    def __init__(self, server: Served) -> None:
        super().__init__(daemon=True)
        self.server, self.first_seen, self.rss_peak, self.failed = server, {}, 0.0, 0
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
                else:
                    self.failed += 1
                self.rss_peak = max(self.rss_peak, self.server.rss_mb()[0])
                time.sleep(0.05)


def rollback(env: dict[str, str], work: Path, to: str, must_move: bool = True) -> float:
    """Move champion to `to` in the copied registry; the alias move's time (epoch) from the registry's tag."""
    started = time.time()
    subprocess.run([sys.executable, "-m", "pipelines.rollback", "--to", to, "--params", str(work / "params.yaml"),
                    "--bundle", str(work / "bundle"), "--metrics", str(work / "metrics"),
                    "--bento-record", str(work / "bento_model.json")],
                   cwd=REPO, env=env, check=True, capture_output=True)
    import mlflow

    taken = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"]).get_model_version("textclf", to).tags["champion_taken_at"]
    at = datetime.fromisoformat(taken).timestamp()
    if must_move and at < started:
        raise RuntimeError(f"v{to} already held champion: the alias did not move")
    return at


def phase(server: Served, watches: list[Watch], bodies: Path, seconds: int, switch=None, switch_at: float = 2,
          target: str | None = None) -> dict:
    """wrk on `server` for `seconds`; `switch()` runs `switch_at` seconds in, and the phase lasts until every
    service has answered with `target`. Peak memory over the phase."""
    for watch in watches:
        watch.rss_peak, watch.failed = 0.0, 0
        watch.first_seen.clear()
    mover = threading.Timer(switch_at, switch) if switch else None
    if mover:
        mover.start()
    result = run_wrk(server.url, bodies, 32, seconds)
    wrk_end = time.time()
    if mover:
        mover.join()
    deadline = time.monotonic() + 60
    while target and not all(target in w.first_seen for w in watches):
        if time.monotonic() > deadline:
            raise RuntimeError(f"v{target} never answered on every service")
        time.sleep(0.1)
    time.sleep(1)
    return {"rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "errors": result.errors,
            "requests": result.requests, "rss_peak_mb": [round(w.rss_peak, 1) for w in watches],
            "poller_failed": [w.failed for w in watches],
            "first_seen": [w.first_seen[target] for w in watches] if target else None,
            "switched_during_wrk": bool(target) and all(w.first_seen[target] < wrk_end for w in watches)}


def swapped(server: Served) -> float:
    """textclf_model_reloads_total{outcome="swapped"}, summed over the service's workers."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('textclf_model_reloads_total{outcome="swapped"}'))


def soak(server: Served, bundles: dict[str, Path], channel: Path, swaps: int, every_s: float = 7.0) -> list[dict]:
    """The service's resident memory (MB) before and after each of `swaps` alternating switches under the
    pollers' light load, with the workers' swap count, so each sample is known to follow a switch. A model
    that is never freed would add its size every switch; memory the allocator keeps for reuse levels off."""
    series = [{"rss_mb": round(server.rss_mb()[0], 1), "swapped": swapped(server)}]
    versions = list(bundles)
    for i in range(swaps):
        publish(bundles[versions[i % 2]], channel, "soak")
        time.sleep(every_s)  # the reload interval (5 s) and the load
        series.append({"rss_mb": round(server.rss_mb()[0], 1), "swapped": swapped(server)})
    return series


def summarise(rounds: list[dict], memory: list[dict]) -> dict:
    """Medians over the rounds; each switch phase's ratios and extra memory against the steady phase of its own
    round (the service's memory creeps up over the first switches, so rounds are not compared with each other)."""
    def median(values) -> float:
        return round(statistics.median(values), 3)

    summary: dict = {"steady": {"rps": median(r["steady"]["rps"] for r in rounds),
                                "p99_ms": median(r["steady"]["p99_ms"] for r in rounds)}}
    for key in ("publish", "rollback"):
        summary[key] = {
            "rps": median(r[key]["rps"] for r in rounds), "p99_ms": median(r[key]["p99_ms"] for r in rounds),
            "rps_ratio": median(r[key]["rps"] / r["steady"]["rps"] for r in rounds),
            "p99_ratio": median(r[key]["p99_ms"] / r["steady"]["p99_ms"] for r in rounds),
            "extra_rss_mb": [round(r[key]["rss_peak_mb"][0] - r["steady"]["rss_peak_mb"][0], 1) for r in rounds],
        }
    summary["switches"] = 2 * len(rounds)
    summary["failed_requests"] = {
        "wrk": sum(r[k]["errors"] for r in rounds for k in ("steady", "publish", "rollback")),
        "pollers": sum(sum(r[k].get("poller_failed", [0])) for r in rounds for k in ("steady", "publish", "rollback"))}
    for key in ("publish_to_first_answer_s", "alias_to_first_answer_s"):
        summary[key] = [statistics.median(r[key][i] for r in rounds) for i in (0, 1)]
    if memory:
        rss = [m["rss_mb"] for m in memory]
        summary["soak"] = {"switches": len(memory) - 1, "rss_mb_before": rss[0], "rss_mb_max": max(rss),
                           "rss_mb_last": rss[-1], "swapped_counted": memory[-1]["swapped"] - memory[0]["swapped"]}
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--versions", nargs=2, default=["1", "2"], help="two registered versions that passed parity")
    p.add_argument("--seconds", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--swaps", type=int, default=16, help="switches of the memory soak")
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
    bundles = {}
    for version in (b, a):  # each version's bundle, as rollback fetches it; the channel ends on `a`
        rollback(env, work, version, must_move=False)
        bundles[version] = shutil.copytree(work / "bundle", work / "bundles" / version)
    servers = [Served([str(BIN / "bentoml"), "serve", "serving.service:Classifier", "--host", "127.0.0.1", "--port",
                       "{port}"], {**env, "TEXTCLF_BUNDLE": str(work / "releases"),
                                   # its own BentoML home: bentoml serve empties $BENTOML_HOME's Prometheus folder
                                   "BENTOML_HOME": str(work / f"bentoml-{i}"),
                                   "TEXTCLF_FEEDBACK_URL": f"sqlite:///{work / f'feedback-{i}.db'}"},
                      work / f"serve-{i}.log") for i in (1, 2)]
    watches = [Watch(s) for s in servers]
    for watch in watches:
        watch.start()
    bodies = write_bodies(work / "bodies.jsonl", review_texts(), 1)
    rounds = []
    try:
        run_wrk(servers[0].url, bodies, 32, 3)  # warm-up, not counted
        for _ in range(args.rounds):  # serving a: rollback to b (all of it), then publish a (the service alone)
            steady = phase(servers[0], watches, bodies, args.seconds)
            moved: list[float] = []
            by_rollback = phase(servers[0], watches, bodies, args.seconds, target=b,
                                switch=lambda moved=moved: moved.append(rollback(env, work, b)))
            published: list[float] = []
            by_publish = phase(servers[0], watches, bodies, args.seconds, target=a,
                               switch=lambda published=published: (published.append(time.time()),
                                                                   publish(bundles[a], work / "releases", "bench")))
            rollback(env, work, a)  # the alias back on a, whose release the services already serve: no switch
            rounds.append({
                "steady": steady, "publish": by_publish, "rollback": by_rollback,
                "publish_to_first_answer_s": [round(t - published[0], 2) for t in by_publish["first_seen"]],
                "alias_to_first_answer_s": [round(t - moved[0], 2) for t in by_rollback["first_seen"]],
            })
            print(json.dumps({k: v for k, v in rounds[-1].items() if not isinstance(v, dict)}),
                  {k: (rounds[-1][k]["rps"], rounds[-1][k]["p99_ms"], rounds[-1][k]["errors"],
                       rounds[-1][k]["rss_peak_mb"]) for k in ("steady", "publish", "rollback")}, file=sys.stderr)
        memory = soak(servers[0], bundles, work / "releases", args.swaps)
    finally:
        for watch in watches:
            watch.stop.set()
        for server in servers:
            server.stop()

    summary = summarise(rounds, memory)
    args.out.write_text(json.dumps({"versions": args.versions, "seconds": args.seconds, "connections": 32,
                                    "reload_interval_s": 5, "summary": summary, "rounds": rounds,
                                    "soak": memory}, indent=2) + "\n")
    print(json.dumps(summary, indent=2), file=sys.stderr)


if __name__ == "__main__":
    main()

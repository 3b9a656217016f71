"""What the review queue's text index costs the prediction log's writer: rows a second into SQLite with every
index, against the same schema without `predictions_text`, same run, alternating.

Each arm starts from a store already holding `--prefill` predictions (an index costs more as it grows) and
then writes `--rows` more in transactions of `--batch`, as the service's writer thread does (a 0.2 s flush at
100 requests of 16 texts a second is about 320 rows). Medians of the rounds are compared. Writes
bench/results/log_write.json.

    python -m bench.log_write_bench --prefill 500000 --rows 200000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.scale_bench import DAY, fill, scored_pool
from bench.serve_bench import REPO
from serving.prediction_log import text_sha256
from serving.store import Prediction, Store


def store_with(path: Path, text_index: bool, prefill: int, pool: list, until: float) -> Store:
    store = Store(f"sqlite:///{path}")
    if not text_index:
        with store._cursor() as cur:  # the schema as it was before the review queue counted texts
            cur.execute("DROP INDEX predictions_text")
    fill(store, prefill, pool, until, ("bench", "1"))
    return store


def write_rate(store: Store, pool: list, rows: int, batch: int, until: float) -> float:
    """Rows a second for `rows` new predictions written `batch` to a transaction."""
    made = []
    for i in range(rows):
        text, answer, (tokens, unk) = pool[i % len(pool)]
        text = f"{text}{i}"
        made.append(Prediction(uuid.uuid4().hex, until + i / 1000, text, text_sha256(text), answer["label"],
                               answer["score"], answer["scores"], "bench", "1", len(text), tokens, unk))
    started = time.perf_counter()
    for start in range(0, rows, batch):
        store.add_predictions(made[start : start + batch])
    return rows / (time.perf_counter() - started)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, default=REPO / "artifacts/bundle")
    p.add_argument("--data", type=Path, default=REPO / "data/processed")
    p.add_argument("--prefill", type=int, default=500_000)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=320)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=REPO / "bench/results/log_write.json")
    args = p.parse_args()
    pool, until = scored_pool(args.bundle, args.data), time.time() - DAY
    work = Path(tempfile.mkdtemp(prefix="log_write_bench_"))
    runs = []
    for round_no in range(args.rounds):
        for text_index in (True, False):
            path = work / f"log-{round_no}-{int(text_index)}.db"
            store = store_with(path, text_index, args.prefill, pool, until)
            rate = write_rate(store, pool, args.rows, args.batch, until)
            runs.append({"round": round_no, "text_index": text_index, "rows_per_s": round(rate, 1)})
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
            path.unlink()
    with_index = statistics.median(r["rows_per_s"] for r in runs if r["text_index"])
    without = statistics.median(r["rows_per_s"] for r in runs if not r["text_index"])
    report = {"prefill": args.prefill, "rows": args.rows, "batch": args.batch, "runs": runs,
              "rows_per_s_with_text_index": with_index, "rows_per_s_without": without,
              "ratio": round(with_index / without, 3)}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}), file=sys.stderr)


if __name__ == "__main__":
    main()

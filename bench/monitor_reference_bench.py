"""What the monitor's reference costs on a big corpus: `pipelines.monitor` over one day of logged predictions,
compared with a big project's splits and served bundle (the scale bench's 2M-text folder), run with this
checkout's code and with an earlier checkout's, each in its own process under the memory watchdog.

The store is filled once (scale_bench.fill: the built-in corpus's texts made distinct by random characters, as
the grown corpus's are), so both runs read the same window; only the reference differs in how it is read.
Writes bench/results/monitor-reference.json.

    git worktree add /tmp/before 957aba0     # the monitor before the reference was sampled
    python -m bench.monitor_reference_bench --project /tmp/scale_corpus_…/n2000000 --before /tmp/before
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.scale_bench import REPO, fill, monitor, scored_pool
from serving.store import Store


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--project", type=Path, required=True, help="a project folder with data/processed and "
                   "artifacts/bundle (the reference the monitor reads)")
    p.add_argument("--before", type=Path, required=True, help="a checkout of the code to compare with")
    p.add_argument("--rows", type=int, default=50_000, help="logged predictions in the day")
    p.add_argument("--cap-mb", type=float, default=8192)
    p.add_argument("--out", type=Path, default=REPO / "bench/results/monitor-reference.json")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="monitor_reference_"))
    url, until = f"sqlite:///{work / 'store.db'}", float(int(time.time()))
    pool = scored_pool(REPO / "artifacts/bundle", REPO / "data/processed")
    fill(Store(url), args.rows, pool, until, ("bench", "1"))
    data, bundle = args.project / "data/processed", args.project / "artifacts/bundle"
    results = {"project": str(args.project), "rows": args.rows, "runs": {}}
    for name, code in (("before", args.before), ("now", REPO)):
        run = monitor(url, until, work, args.cap_mb, bundle, data, code)
        summary = json.loads((work / "monitor.json").read_text()) if run.ok(0, 1) else {}
        checks = summary.get("checks", {})
        results["runs"][name] = {
            "code": str(code), "seconds": round(run.seconds, 1), "peak_rss_mb": round(run.peak_rss_mb),
            "ok": run.ok(0, 1), "capped": run.capped, "returncode": run.returncode,
            "figures": {c: v["figure"] for c, v in checks.items()}, "drifted": summary.get("drifted"),
            "reference_rows": {c: v["detail"].get("reference_rows") for c, v in checks.items()}}
        print(json.dumps({name: results["runs"][name]}), file=sys.stderr, flush=True)
        if not run.ok(0, 1):
            print(run.log, file=sys.stderr)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""How long each stage takes to start: `python -c "import pipelines.<stage>"`, this checkout against another.

A stage's imports are most of its time on a small corpus and a fixed cost on any corpus, once per stage and
per `dvc repro`. Both checkouts are timed in the same run, alternating, with this venv's Python:
    git worktree add /tmp/base 11b305f
    python -m bench.stage_imports --base /tmp/base
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

STAGES = ("ingest", "preprocess", "pretrain", "train", "evaluate", "ensemble", "select", "export", "package",
          "rollback")
HEAVY = ("lightning", "torchmetrics", "sklearn", "onnx", "torch", "mlflow")


def start_seconds(checkout: Path, stage: str) -> float:
    begin = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import pipelines.{stage}"], cwd=checkout, check=True,
                   env={"PYTHONPATH": str(checkout), "PATH": ""})
    return time.perf_counter() - begin


def heavy_imports(checkout: Path, stage: str) -> list[str]:
    """The heavy libraries the stage imports, checking that the checkout's own code is what got imported."""
    probe = (f"import sys, pipelines.{stage} as m; print(m.__file__); "
             f"print(','.join(h for h in {HEAVY!r} if h in sys.modules))")
    where, found = subprocess.run([sys.executable, "-c", probe], cwd=checkout, check=True, capture_output=True,
                                  text=True, env={"PYTHONPATH": str(checkout), "PATH": ""}).stdout.splitlines()
    if not Path(where).resolve().is_relative_to(checkout.resolve()):
        raise SystemExit(f"pipelines.{stage} came from {where}, not from {checkout}")
    return found.split(",") if found else []


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=Path, required=True, help="the checkout to compare with")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("bench/results/stage_imports.json"))
    args = p.parse_args()
    here = Path.cwd()
    rows = {}
    for stage in STAGES:
        times = {"base": [], "this": []}
        for _ in range(args.rounds):  # alternate, so a slow minute of the machine hits both
            times["base"].append(start_seconds(args.base, stage))
            times["this"].append(start_seconds(here, stage))
        base, this = (round(statistics.median(times[k]), 2) for k in ("base", "this"))
        rows[stage] = {"base_s": base, "this_s": this, "ratio": round(this / base, 2),
                       "base_imports": heavy_imports(args.base, stage), "this_imports": heavy_imports(here, stage)}
        print(stage, rows[stage], flush=True)
    args.out.write_text(json.dumps({"base": str(args.base), "rounds": args.rounds, "stages": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

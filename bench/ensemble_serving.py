"""REST throughput of the ensemble champion against one of its members, through `bentoml serve`, same run.

    python -m bench.ensemble_serving --single rcnn      # after `dvc repro` with the ensemble as champion

Both bundles are built the way the export stage builds them; `wrk` posts 32 real test texts a request over
8 connections to each in turn. Writes bench/results/ensemble_serving.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from types import SimpleNamespace

from bench.batch_bench import corpus_texts, rest
from pipelines.export import build_bundle


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", type=Path, default=Path("models"))
    p.add_argument("--data", type=Path, default=Path("data/processed"))
    p.add_argument("--single", default="rcnn")
    p.add_argument("--members", nargs="+", help="the ensemble's models (default: the ones the ensemble stage chose)")
    p.add_argument("--metrics", type=Path, default=Path("metrics"))
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--out", type=Path, default=Path("bench/results/ensemble_serving.json"))
    args = p.parse_args()
    texts = corpus_texts(args.data)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        records = {c: json.loads((args.metrics / "checks" / f"{c}.json").read_text())
                   for c in (args.single, "ensemble")}
        members = args.members or records["ensemble"]["members"]
        # Calibrated as the export stage exports them (a temperature inside the graph).
        picks = {args.single: {"model": args.single, "calibration": records[args.single]["calibration"]},
                 "ensemble": {"model": "ensemble", "members": members,
                              "calibration": records["ensemble"]["calibration"]}}
        for name, pick in picks.items():
            bundle = Path(tmp) / name
            build_bundle(pick, args.models, args.data, bundle, 17, 1e-5, SimpleNamespace(metrics={}, tags={}))
            texts_per_s, _ = rest(bundle, texts, Path(tmp), args.seconds)
            results[name] = {"texts_per_s": texts_per_s, "requests_per_s": texts_per_s / 32}
            print(name, results[name], flush=True)
    results["members"] = members
    results["ensemble_vs_single"] = results["ensemble"]["texts_per_s"] / results[args.single]["texts_per_s"]
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

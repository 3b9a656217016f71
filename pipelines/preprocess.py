"""Stage preprocess: normalise, drop (with reasons), split without leakage, train the tokenizer."""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from pipelines.cli import parser, run
from pipelines.params import load_params
from training.cleaning import clean, stratified_split
from training.jsonio import write_json
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
    cleaned = clean(pd.read_parquet(interim / "corpus.parquet"), ingest["unreadable"])
    splits = stratified_split(cleaned.frame, params.val_ratio, params.test_ratio, params.seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in splits.items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
    corpora, language = choose_corpora(params.tokenizer_corpora, splits["train"]["text"].tolist())
    log.info("preprocess: %s; tokenizer corpora: %s", language.reason, corpora or "the train split only")
    vocabulary_texts = itertools.chain(splits["train"]["text"], *read_unlabelled(corpora).values())
    kind = params.tokenizer if params.tokenizer != "auto" else "word" if language.language == "zh" else "subword"
    tokenizer = train_tokenizer(vocabulary_texts, params.vocab_size, params.min_frequency, params.max_len, kind,
                                params.lowercase)
    tokenizer.save(str(out / "tokenizer.json"))
    report = {
        "source": ingest["source"], "rows_read": ingest["rows_read"], "rows_kept": len(cleaned.frame),
        "rows_dropped": sum(cleaned.dropped.values()), "dropped": cleaned.dropped, "feedback": ingest.get("feedback"),
        "splits": {name: len(frame) for name, frame in splits.items()},
        "labels": {name: frame["label"].value_counts().sort_index().to_dict() for name, frame in splits.items()},
        "vocab_size": tokenizer.get_vocab_size(), "language": asdict(language), "tokenizer_corpora": corpora,
        "tokenizer": {"kind": kind, "lowercase": params.lowercase},
    }
    if report["rows_kept"] + report["rows_dropped"] != report["rows_read"]:
        raise RuntimeError(f"report doesn't account for every row: {report}")
    write_json(out / "report.json", report)
    log.info("preprocess: kept %d of %d rows, dropped %s; splits %s",
             report["rows_kept"], report["rows_read"], cleaned.dropped, report["splits"])


if __name__ == "__main__":
    run(main)

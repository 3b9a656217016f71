"""Stage ingest: read `data.source` into data/interim/corpus.parquet, counting unreadable rows."""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.cli import parser, run
from pipelines.params import load_params
from training.corpus import read_corpus
from training.jsonio import write_json

log = logging.getLogger("textclf.ingest")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--out", default="data/interim", help="output folder")
    args = p.parse_args()
    data = load_params(args.params).data
    corpus = read_corpus(data.source, data.text_column, data.label_column)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus.frame.to_parquet(out / "corpus.parquet", index=False)
    write_json(out / "ingest.json", {
        "source": corpus.source, "rows_read": len(corpus.frame) + corpus.unreadable,
        "unreadable": corpus.unreadable,
    })
    log.info("ingest: %d rows from %s (%d unreadable)", len(corpus.frame), corpus.source, corpus.unreadable)


if __name__ == "__main__":
    run(main)

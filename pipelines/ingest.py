"""Stage ingest: read `data.source` (plus the feedback snapshot) into data/interim/corpus.parquet, counting
unreadable rows."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from monitoring.feedback_data import SNAPSHOT, merge_feedback
from pipelines.cli import parser, run
from pipelines.params import DataParams, load_params
from training.corpus import read_corpus
from training.jsonio import write_json

log = logging.getLogger("textclf.ingest")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--out", default="data/interim", help="output folder")
    p.add_argument("--feedback", type=Path, default=SNAPSHOT, help=f"feedback snapshot (default: {SNAPSHOT})")
    args = p.parse_args()
    data = load_params(args.params).data
    corpus = read_corpus(data.source, data.text_column, data.label_column)
    frame, feedback = corpus.frame, None
    if use_feedback(data, args.feedback):
        merged = merge_feedback(frame, pd.read_parquet(args.feedback))
        frame, feedback = merged.frame, {"snapshot": str(args.feedback), **merged.counts}
        log.info("ingest: feedback from %s: %s", args.feedback, merged.counts)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out / "corpus.parquet", index=False)
    write_json(out / "ingest.json", {
        "source": corpus.source, "rows_read": len(frame) + corpus.unreadable,
        "unreadable": corpus.unreadable, "feedback": feedback,
    })
    log.info("ingest: %d rows from %s (%d unreadable)", len(frame), corpus.source, corpus.unreadable)


def use_feedback(data: DataParams, snapshot: Path) -> bool:
    if data.feedback is True and not snapshot.is_file():
        raise FileNotFoundError(f"data.feedback is true but {snapshot} does not exist: run `python -m "
                                "pipelines.feedback snapshot` first, or set data.feedback to auto or false")
    return data.feedback is True or (data.feedback == "auto" and snapshot.is_file())


if __name__ == "__main__":
    run(main)

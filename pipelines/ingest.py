"""Stage ingest: read `data.source` (a file, a folder or glob of shards, or the built-in corpus) plus the
feedback snapshot into data/interim/corpus.parquet in record batches, counting unreadable rows."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from monitoring.feedback_data import SNAPSHOT, FeedbackMerge
from pipelines.cli import parser, run
from pipelines.params import DataParams, load_params
from training.corpus import LabelCount, iter_corpus
from training.jsonio import write_json
from training.prepare import SCHEMA

log = logging.getLogger("textclf.ingest")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--out", default="data/interim", help="output folder")
    p.add_argument("--feedback", type=Path, default=SNAPSHOT, help=f"feedback snapshot (default: {SNAPSHOT})")
    args = p.parse_args()
    data = load_params(args.params).data
    merge = FeedbackMerge(pd.read_parquet(args.feedback)) if use_feedback(data, args.feedback) else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = unreadable = 0
    labels = LabelCount()
    with pq.ParquetWriter(out / "corpus.parquet", SCHEMA) as writer:
        for batch in iter_corpus(data.source, data.text_column, data.label_column):
            frame = pd.DataFrame({"text": batch.texts, "label": batch.labels}, dtype=object)
            frame = merge.apply(frame) if merge is not None else frame
            labels.add(frame["label"].tolist())
            writer.write_table(pa.Table.from_pandas(frame, SCHEMA, preserve_index=False))
            rows, unreadable = rows + len(frame), unreadable + batch.unreadable
        if merge is not None:
            writer.write_table(pa.Table.from_pandas(merge.tail(), SCHEMA, preserve_index=False))
            rows += len(merge.rows)
            log.info("ingest: feedback from %s: %s", args.feedback, merge.counts)
    labels.check(data.source)
    feedback = None if merge is None else {"snapshot": str(args.feedback), **merge.counts}
    write_json(out / "ingest.json", {
        "source": data.source, "rows_read": rows + unreadable, "unreadable": unreadable, "feedback": feedback,
    })
    log.info("ingest: %d rows from %s (%d unreadable)", rows, data.source, unreadable)


def use_feedback(data: DataParams, snapshot: Path) -> bool:
    if data.feedback is True and not snapshot.is_file():
        raise FileNotFoundError(f"data.feedback is true but {snapshot} does not exist: run `python -m "
                                "pipelines.feedback snapshot` first, or set data.feedback to auto or false")
    return data.feedback is True or (data.feedback == "auto" and snapshot.is_file())


if __name__ == "__main__":
    run(main)

"""Production feedback as files: export it, queue what a person should label next, snapshot it for training.

  python -m pipelines.feedback export feedback.csv          every feedback row with the text it labels
  python -m pipelines.feedback queue to_label.csv --limit 100   least confident unlabelled predictions
  python -m pipelines.feedback queue tasks.json --format label-studio --config config.xml   ... as Label Studio tasks
  python -m pipelines.feedback import export.json           Label Studio's JSON / JSON-MIN export → feedback
  python -m pipelines.feedback snapshot                     data/feedback/feedback.parquet, tracked by DVC
  python -m pipelines.feedback prune --older-than 30        delete older predictions, never labelled ones

The store is TEXTCLF_FEEDBACK_URL (what the service writes to), or --store.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from monitoring import label_studio
from monitoring.feedback_data import QUEUE_COLUMNS, SNAPSHOT, feedback_frame, iso, review_queue, write_snapshot
from monitoring.window import store_url, window
from pipelines.cli import run
from serving.contract import read_meta
from serving.store import Store
from training.jsonio import write_json

log = logging.getLogger("textclf.feedback")


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """CSV (UTF-8, opens in a spreadsheet), JSONL or Parquet, by the file's ending."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix in (".jsonl", ".ndjson"):
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif suffix in (".csv", ".tsv"):
        frame.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",", encoding="utf-8")
    else:
        raise ValueError(f"{path}: write .csv, .tsv, .jsonl or .parquet")


def dvc_add(path: Path) -> bool:
    """`dvc add` the snapshot when this is a DVC repo, so the data is versioned and `dvc repro` sees it."""
    if not Path(".dvc").is_dir():
        return False
    done = subprocess.run([sys.executable, "-m", "dvc", "add", "-q", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        raise ValueError(f"dvc add {path} failed: {done.stderr.strip() or done.stdout.strip()}")
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", help="store URL (default: TEXTCLF_FEEDBACK_URL, else sqlite:///feedback.db)")
    sub = p.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="every feedback row with its text")
    export.add_argument("output", type=Path)
    queue = sub.add_parser("queue", help="the least confident predictions nobody has labelled yet")
    queue.add_argument("output", type=Path)
    queue.add_argument("--limit", type=int, default=100)
    queue.add_argument("--since", help="ISO-8601 start (default: 24 hours before --until)")
    queue.add_argument("--until", help="ISO-8601 end (default: now)")
    queue.add_argument("--format", choices=["table", "label-studio"], default="table",
                       help="table: CSV/TSV/JSONL/Parquet by the file's ending; label-studio: tasks JSON")
    queue.add_argument("--config", type=Path, help="also write the Label Studio labelling config (XML) here")
    queue.add_argument("--bundle", type=Path, default=Path("artifacts/bundle"), help="the model whose labels to offer")
    imports = sub.add_parser("import", help="store Label Studio's JSON or JSON-MIN export as feedback")
    imports.add_argument("export", type=Path)
    imports.add_argument("--bundle", type=Path, default=Path("artifacts/bundle"),
                         help="the served model, whose labels an annotation may use")
    snapshot = sub.add_parser("snapshot", help=f"freeze the feedback into {SNAPSHOT} and dvc add it")
    snapshot.add_argument("--out", type=Path, default=SNAPSHOT)
    snapshot.add_argument("--no-dvc", action="store_true", help="write the file only")
    prune = sub.add_parser("prune", help="delete predictions older than DAYS, keeping every one that has feedback")
    prune.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    args = p.parse_args()
    if args.command == "queue" and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    if args.command == "prune" and not args.older_than > 0:
        raise ValueError(f"--older-than must be a positive number of days, got {args.older_than:g}")

    store = Store(store_url(args.store))
    if args.command == "export":
        frame = feedback_frame(store)
        write_table(frame, args.output)
        log.info("feedback: %d row(s) written to %s", len(frame), args.output)
    elif args.command == "queue":
        span = window(args.since, args.until)
        rows = review_queue(store, span.since, span.until, args.limit)
        if args.format == "label-studio":
            write_json(args.output, label_studio.tasks(rows))
        else:
            write_table(pd.DataFrame(rows) if rows else pd.DataFrame(columns=QUEUE_COLUMNS), args.output)
        if args.config:
            args.config.write_text(label_studio.labeling_config(read_meta(args.bundle).labels), encoding="utf-8")
        log.info("feedback: %d text(s) to label written to %s (%s to %s); %s", len(rows), args.output,
                 *span.as_dict().values(), "import them into Label Studio, then `python -m pipelines.feedback "
                 "import` its export" if args.format == "label-studio" else "fill in 'label' and POST each "
                 "{id, label} to /feedback")
    elif args.command == "import":
        done = label_studio.import_feedback(store, label_studio.read_export(args.export),
                                            tuple(read_meta(args.bundle).labels))
        log.info("feedback: %d label(s) stored from %s; %d task(s) without an annotation; %d unknown id(s)%s",
                 done.stored, args.export, done.skipped, len(done.unknown_ids),
                 f": {', '.join(done.unknown_ids[:20])}" if done.unknown_ids else "")
    elif args.command == "prune":
        before = time.time() - args.older_than * 86400
        removed = store.prune(before)
        log.info("feedback: removed %d prediction(s) logged before %s from %s; those with feedback are kept",
                 removed, iso(before), store.redacted_url)
    else:
        snap = write_snapshot(store, args.out)
        if snap.without_text:
            log.warning("feedback: %d row(s) have no text (logged with TEXTCLF_LOG_TEXTS=false) and are left "
                        "out", snap.without_text)
        tracked = not args.no_dvc and dvc_add(snap.path)
        log.info("feedback: %d row(s) frozen into %s%s", snap.rows, snap.path,
                 f"; commit it: git add {snap.path.parent} && git commit, then dvc push" if tracked else "")


if __name__ == "__main__":
    run(main)

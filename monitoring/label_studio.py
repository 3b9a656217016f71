"""The review queue as Label Studio tasks, and Label Studio's export back as feedback.

Label Studio is the annotation tool text teams already run; it is never a dependency of ours. We write what its
import reads (tasks with the model's answer as a pre-annotation, so reviewers correct rather than start from
nothing, and the project's labelling config) and read what its export writes (JSON, and JSON-MIN). Every
annotation goes through the same validation as POST /feedback, and an import stores all of a file or nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from serving.errors import ApiError
from serving.feedback import parse
from serving.store import Prediction, Store

FROM_NAME, TO_NAME = "label", "text"  # the config's Choices and Text tag names


class LabelStudioError(ValueError):
    """The export can't be imported as it is; nothing was stored."""


def labeling_config(labels: list[str]) -> str:
    """The project's labelling interface: the text and one choice per model label."""
    choices = "\n".join(f"    <Choice value={quoteattr(label)}/>" for label in labels)
    return (f'<View>\n  <Text name="{TO_NAME}" value="$text"/>\n'
            f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="true">\n'
            f"{choices}\n  </Choices>\n</View>\n")


def tasks(queue: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Queue rows → Label Studio tasks: the text and the prediction id to send back, the count, and the model's
    label and score as a pre-annotation (`predictions`, with `model_version`)."""
    return [{
        "data": {"text": row["text"], "prediction_id": row["id"], "count": row.get("count", 1)},
        "predictions": [{
            "model_version": str(row["model_version"]), "score": row["score"],
            "result": [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
                        "value": {"choices": [row["predicted"]]}}],
        }],
    } for row in queue]


@dataclass
class Annotations:
    """What an export holds, after picking each task's latest annotation."""

    labels: dict[str, str] = field(default_factory=dict)  # prediction id → label
    skipped: int = 0  # tasks with no usable annotation (skipped, cancelled, or not labelled yet)


def _choice(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = value.get("choices")
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    return None


def _from_full(task: dict[str, Any]) -> tuple[str | None, str | None, str]:
    """(prediction id, label, time) of a JSON-export task's latest kept annotation."""
    kept = [a for a in task.get("annotations") or [] if not a.get("was_cancelled") and a.get("result")]
    if not kept:
        return task.get("data", {}).get("prediction_id"), None, ""
    latest = max(kept, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0))
    labels = [_choice(r.get("value")) for r in latest["result"] if r.get("from_name") == FROM_NAME]
    when = str(latest.get("updated_at") or latest.get("created_at") or "")
    return task.get("data", {}).get("prediction_id"), labels[0] if labels else None, when


def _from_min(row: dict[str, Any]) -> tuple[str | None, str | None, str]:
    """(prediction id, label, time) of one JSON-MIN row (one row an annotation; none for a skipped task)."""
    return row.get("prediction_id"), _choice(row.get(FROM_NAME)), str(row.get("updated_at") or row.get("created_at")
                                                                     or "")


def read_export(path: Path) -> Annotations:
    """Label Studio's JSON or JSON-MIN export: for each prediction id its latest annotation's label."""
    try:
        items = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelStudioError(f"{path}: not a Label Studio JSON export ({exc}); export the project as JSON or "
                           "JSON-MIN") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise LabelStudioError(f"{path}: a Label Studio export is a JSON list of tasks; export as JSON or JSON-MIN")
    found = Annotations()
    latest: dict[str, str] = {}
    for item in items:
        pid, label, when = _from_full(item) if "data" in item or "annotations" in item else _from_min(item)
        if not pid:
            raise LabelStudioError(f"{path}: a task has no data.prediction_id; import tasks written by "
                               "`python -m pipelines.feedback queue OUT.json --format label-studio`")
        if label is None:
            found.skipped += 1
            continue
        if pid not in latest or when >= latest[pid]:  # a task annotated twice keeps the latest
            latest[pid], found.labels[pid] = when, label
    return found


@dataclass(frozen=True)
class Imported:
    stored: int
    skipped: int
    unknown_ids: list[str]


def import_feedback(store: Store, export: Annotations, labels: tuple[str, ...]) -> Imported:
    """Store every annotation as feedback, validated as POST /feedback validates; all or nothing.

    A label the model lacks stops the import (naming the labels); ids no prediction has are counted and listed,
    not stored."""
    ready: list[tuple[Prediction, str]] = []
    unknown: list[str] = []
    for pid, label in export.labels.items():
        try:
            parse(json.dumps({"id": pid, "label": label}).encode(), labels)
        except ApiError as exc:
            if exc.status == 404:
                unknown.append(pid)
                continue
            raise LabelStudioError(f"prediction {pid}: {exc.error}; nothing was imported") from None
        prediction = store.prediction(pid)
        if prediction is None:
            unknown.append(pid)
        else:
            ready.append((prediction, label))
    store.add_feedbacks(ready)
    return Imported(len(ready), export.skipped, unknown)

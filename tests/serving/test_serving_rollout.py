"""A real `bentoml serve` following its release channel: promotion, refusals and rollback under load."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from tiny_bundle import TINY_TEXTS, make_tiny_bundle

from serving.predictor import OnnxPredictor
from serving.releases import POINTER, publish
from tests.servers import Load, Server, start_server

TEXTS = list(TINY_TEXTS[:4])


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """v1 and v2: same labels, other weights; v3: v2's files with a broken model; v4: other labels."""
    root = tmp_path_factory.mktemp("releases")
    make_tiny_bundle(root / "v1", seed=0, version="1")
    make_tiny_bundle(root / "v2", seed=1, version="2")
    shutil.copytree(root / "v2", root / "v3")
    (root / "v3/model.onnx").write_bytes(b"not an onnx model")
    meta = json.loads((root / "v3/meta.json").read_text())
    (root / "v3/meta.json").write_text(json.dumps({**meta, "version": "3"}))
    make_tiny_bundle(root / "v4", labels=("spam", "ham"), version="4")
    return {v: root / f"v{v}" for v in "1234"}


def model_card(server: Server) -> dict:
    return httpx.get(server.url + "/model", timeout=10).json()


def metric(server: Server, name: str, **labels: str) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


def test_promotion_refusals_and_rollback_under_load_fail_no_request(releases, tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    publish(releases["1"], channel, "first")
    expected = {v: [a["scores"] for a in OnnxPredictor(releases[v]).predict_with_ids(TEXTS)[0]] for v in "12"}
    assert expected["1"] != expected["2"]  # the test below can tell the versions apart by their answers
    server = start_server(channel, tmp_path / "serve.log", env={"TEXTCLF_RELOAD_INTERVAL_S": "0.5"})
    try:
        with Load(server.url, TEXTS) as load:
            time.sleep(2)
            start = time.monotonic()
            publish(releases["2"], channel, "promoted")
            promoted_s = load.wait_for("2", start)
            deadline = time.monotonic() + 30  # both workers swapped, not just the one the last answers came from
            while metric(server, "textclf_model_reloads_total", outcome="swapped") < 2:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.2)

            for bad, why in (("3", "cannot load"), ("4", "labels")):
                publish(releases[bad], channel, "a bad release")
                deadline = time.monotonic() + 30
                while server.log().count(f"refused v{bad} ") < 2:  # one line from each of the two workers
                    assert time.monotonic() < deadline, server.log()
                    time.sleep(0.2)
                card = model_card(server)
                assert card["version"] == "2" and card["rollout"]["refused"]["version"] == bad
                assert why in card["rollout"]["refused"]["reason"]
            time.sleep(1)
            assert all(a[2] == "2" for a in load.answers[-40:])  # both workers kept serving v2

            start = time.monotonic()
            publish(releases["1"], channel, "rolled back")
            rolled_back_s = load.wait_for("1", start)
            card = model_card(server)
            assert card["version"] == "1" and card["rollout"]["refused"] is None and card["rollout"]["following"]
        statuses = [a[1] for a in load.answers]
        assert statuses.count(200) == len(statuses) > 200, {s: statuses.count(s) for s in set(statuses)}
        # Each answer is wholly one version's: its scores are exactly what that version's bundle gives.
        for _, _, version, body in load.answers:
            assert version in expected, version
            assert np.allclose([[*a["scores"].values()] for a in body],
                               [[*s.values()] for s in expected[version]], atol=1e-5)
        assert promoted_s < 30 and rolled_back_s < 30

        assert metric(server, "textclf_model_reloads_total", outcome="swapped") >= 4  # 2 workers x 2 swaps
        assert metric(server, "textclf_model_reloads_total", outcome="refused") >= 4  # 2 workers x 2 refusals
        for version in "12":
            assert metric(server, "textclf_predictions_total", version=version) > 0
        assert server.log().count("refused v3 ") == 2 and "Traceback" not in server.log()  # then quiet

        # The prediction log records which version answered each id (its writers commit within 0.2 s).
        headers = {a["id"]: version for _, _, version, body in load.answers for a in body}
        deadline = time.monotonic() + 10
        while True:
            with sqlite3.connect(tmp_path / "feedback.db") as db:
                logged = dict(db.execute("SELECT id, model_version FROM predictions"))
            if set(headers) <= set(logged) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert {i: logged.get(i) for i in headers} == headers
    finally:
        server.stop()


def test_interval_zero_serves_the_channel_without_following(releases, tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    publish(releases["1"], channel, "first")
    server = start_server(channel, tmp_path / "serve.log", env={"TEXTCLF_RELOAD_INTERVAL_S": "0",
                                                                "TEXTCLF_WORKERS": "1"})
    try:
        publish(releases["2"], channel, "promoted")
        time.sleep(6)  # longer than the default interval, in case 0 fell back to it
        answer = httpx.post(server.url + "/classify", json={"texts": TEXTS}, timeout=10)
        assert answer.headers["x-model-version"] == "1"
        assert model_card(server)["rollout"]["following"] is False
    finally:
        server.stop()


def test_a_service_started_before_any_good_release_waits_for_one(releases, tmp_path: Path) -> None:
    """Started on a channel nobody has published to yet (a first deploy, a mount not there yet), then given a
    broken release, the service is alive but not ready, says why in /model, and serves the first good one."""
    channel = tmp_path / "channel"
    server = start_server(channel, tmp_path / "serve.log", wait_ready=False,
                          env={"TEXTCLF_RELOAD_INTERVAL_S": "0.5", "TEXTCLF_WORKERS": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                card = httpx.get(server.url + "/model", timeout=5)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.3)
        assert card.status_code == 503 and card.json()["rollout"]["following"] is True
        assert "has no champion.json" in server.log()
        publish(releases["3"], channel, "broken")
        deadline = time.monotonic() + 30
        while ((card := model_card(server))["rollout"]["refused"] or {}).get("version") != "3":
            assert time.monotonic() < deadline, card
            time.sleep(0.3)
        assert httpx.get(server.url + "/readyz", timeout=5).status_code == 503
        publish(releases["1"], channel, "fixed")
        deadline = time.monotonic() + 30
        while httpx.get(server.url + "/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.3)
        assert httpx.post(server.url + "/classify", json={"texts": TEXTS}, timeout=10).headers["x-model-version"] == "1"
        assert json.loads((channel / POINTER).read_text())["version"] == "1"
        assert "Traceback" not in server.log()
    finally:
        server.stop()

"""Token, readiness with a missing or corrupt bundle, and a bounded load."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import httpx
import pytest

from serving.config import load_config
from tests.servers import Server, start_server


@pytest.fixture(scope="module")
def token_server(bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    srv = start_server(bundle, tmp_path_factory.mktemp("token") / "serve.log", env={"TEXTCLF_API_TOKEN": "s3cret"})
    yield srv
    srv.stop()


def test_token_guards_classify_only(token_server: Server) -> None:
    with httpx.Client(base_url=token_server.url, timeout=30) as http:
        body = {"texts": ["好"]}
        assert http.post("/classify", json=body).status_code == 401
        wrong = http.post("/classify", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "Authorization" in wrong.json()["error"]
        assert wrong.headers["www-authenticate"] == "Bearer"
        assert http.post("/classify", json=body, headers={"Authorization": "s3cret"}).status_code == 401
        assert http.post("/classify", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        for path in ("/livez", "/healthz", "/readyz", "/metrics", "/docs.json", "/model"):
            assert http.get(path).status_code == 200, path
        paths = http.get("/docs.json").json()["paths"]  # with a token set, the document says 401 too
        assert all("401" in paths[path]["post"]["responses"] for path in ("/classify", "/feedback"))


def assert_never_ready(server: Server, bundle_path: Path, seconds: float = 8.0) -> None:
    deadline = time.monotonic() + seconds
    answered = False
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.log()
        try:
            ready = httpx.get(server.url + "/readyz", timeout=2)
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        answered = True
        assert ready.status_code == 503
        assert httpx.get(server.url + "/livez", timeout=2).status_code == 200
        response = httpx.post(server.url + "/classify", json={"texts": ["好"]}, timeout=5)
        assert response.status_code == 503 and "Traceback" not in response.text
        assert "no model is loaded" in response.json()["error"] and "no model is loaded" in ready.json()["error"]
        assert httpx.get(server.url + "/model", timeout=5).status_code == 503
        time.sleep(0.5)
    assert answered, f"server never answered:\n{server.log()}"
    lines = [line for line in server.log().splitlines() if str(bundle_path) in line]
    workers = load_config().workers
    # one line per worker naming the path: no traceback, no restart loop
    assert len(lines) == workers and all("unusable" in line for line in lines), server.log()
    assert "Traceback" not in server.log()


def test_missing_bundle_never_ready(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-bundle"
    srv = start_server(missing, tmp_path / "serve.log", wait_ready=False)
    try:
        assert_never_ready(srv, missing)
    finally:
        srv.stop()


def test_corrupt_bundle_never_ready(bundle: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt"
    shutil.copytree(bundle, corrupt)
    (corrupt / "model.onnx").write_bytes(b"not an onnx model")
    srv = start_server(corrupt, tmp_path / "serve.log", wait_ready=False)
    try:
        assert_never_ready(srv, corrupt)
    finally:
        srv.stop()


def test_bounded_load_has_no_error(server: Server) -> None:
    texts = ["这本书很好看", "质量太差了，不会再买", "还行吧", "great book", "物流很快"] * 4
    total, clients = 2000, 32

    async def client_loop(http: httpx.AsyncClient, index: int, statuses: list[int]) -> None:
        for n in range(index, total, clients):
            response = await http.post("/classify", json={"texts": [texts[n % len(texts)]]})
            statuses.append(response.status_code)

    async def run() -> list[int]:
        statuses: list[int] = []
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
            await asyncio.gather(*(client_loop(http, i, statuses) for i in range(clients)))
        return statuses

    statuses = asyncio.run(run())
    assert len(statuses) == total
    assert statuses.count(200) == total, {s: statuses.count(s) for s in set(statuses)}

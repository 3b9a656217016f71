"""Fixtures for the serving tests: a tiny real bundle and real `bentoml serve` processes on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tiny_bundle import make_tiny_bundle

from tests.servers import Server, start_server


@pytest.fixture(scope="session")
def torch_model(tmp_path_factory: pytest.TempPathFactory):
    """The torch module behind a second, identical bundle (the export is deterministic given the seed)."""
    path = tmp_path_factory.mktemp("bundle_torch")
    return make_tiny_bundle(path), path


@pytest.fixture(scope="session")
def server(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One shared server with default limits except a small body limit, so the 413 test stays cheap."""
    logs = tmp_path_factory.mktemp("server")
    srv = start_server(bundle, logs / "serve.log", env={"TEXTCLF_MAX_BODY_BYTES": "200000"})
    yield srv
    srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http

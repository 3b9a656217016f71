"""A real `bentoml serve` process on a free loopback port, as `make serve` runs it (shared by test folders)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def end(process: subprocess.Popen, grace_s: float = 15.0) -> None:
    """Terminate a process, and kill it if it is still there after `grace_s`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            import psutil

            # Its workers, noted first: a worker still alive after its parent is gone would outlive the test.
            try:
                workers = psutil.Process(self.process.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                workers = []
            # bentoml serve starts worker processes; it runs in its own session, so signal that group only.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
            _, alive = psutil.wait_procs(workers, timeout=10)
            for worker in alive:
                worker.kill()


def start_server(
    bundle: Path,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    bentoml: Path = VENV_BIN / "bentoml",
    wait_ready: bool = True,
    timeout: float = 90.0,
    cwd: Path = REPO,
) -> Server:
    """`bentoml serve serving.service:Classifier` on a free loopback port, as `make serve` runs it.

    The port is free when chosen but can be taken before bentoml binds it (another process asked the kernel
    for a free port in between): then a new port is tried, up to three times.
    """
    for _ in range(2):
        try:
            return _start_server(bundle, log_path, env, bentoml, wait_ready, timeout, cwd)
        except PortTakenError:
            pass
    return _start_server(bundle, log_path, env, bentoml, wait_ready, timeout, cwd)


class PortTakenError(RuntimeError):
    """bentoml serve could not bind the port chosen for it."""


def _start_server(bundle: Path, log_path: Path, env: Mapping[str, str] | None, bentoml: Path, wait_ready: bool,
                  timeout: float, cwd: Path) -> Server:
    port = free_port()
    full_env = {
        **os.environ,
        "BENTOML_DO_NOT_TRACK": "true",
        "BENTOML_HOME": str(log_path.parent / "bentoml_home"),
        "TEXTCLF_BUNDLE": str(bundle),
        # The prediction log and feedback go beside the log, never into the checkout's feedback.db.
        "TEXTCLF_FEEDBACK_URL": f"sqlite:///{log_path.parent / 'feedback.db'}",
        **(env or {}),
    }
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(bentoml), "serve", "serving.service:Classifier", "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    if wait_ready:
        try:
            wait_until_ready(server, timeout)
        except Exception:
            server.stop()
            raise
    return server


def wait_until_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            log = server.log()
            error = PortTakenError if "Could not bind" in log else RuntimeError
            raise error(f"bentoml serve exited with {server.process.returncode}:\n{log}")
        try:
            if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{server.url} not ready after {timeout}s:\n{server.log()}")


def classify(http: httpx.Client, texts: list[str]) -> list[dict]:
    """POST /classify, asserting a 200; the answers."""
    response = http.post("/classify", json={"texts": texts})
    assert response.status_code == 200, response.text
    return response.json()


class Load:
    """Clients posting /classify from a thread until stopped, each `pause_s` apart (0: back to back); every answer
    is kept."""

    def __init__(self, url: str, texts: list[str], clients: int = 6, pause_s: float = 0.0) -> None:
        self.url, self.texts, self.clients, self.pause_s = url, texts, clients, pause_s
        self.answers: list[tuple[float, int, str | None, list | str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _client(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            try:
                response = await http.post("/classify", json={"texts": self.texts})
                body = response.json() if response.status_code == 200 else response.text
                self.answers.append((time.monotonic(), response.status_code,
                                     response.headers.get("x-model-version"), body))
            except httpx.HTTPError as exc:  # a refused or dropped connection is a failed request too
                self.answers.append((time.monotonic(), 0, None, repr(exc)))
            finally:
                if self.pause_s:
                    await asyncio.sleep(self.pause_s)

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as http:
            await asyncio.gather(*(self._client(http) for _ in range(self.clients)))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def wait_for(self, version: str, since: float, within_s: float = 30) -> float:
        """Seconds from `since` to the first answer by `version`, once the last 40 answers all came from it
        (every worker switched); fails after `within_s`, the promise of a switch within 30 s."""
        deadline = since + within_s
        while time.monotonic() < deadline:
            recent = [a for a in self.answers[-40:] if a[0] > since]
            if len(recent) == 40 and all(a[2] == version for a in recent):
                first = next(a[0] for a in self.answers if a[0] > since and a[2] == version)
                return first - since
            time.sleep(0.1)
        raise AssertionError(f"v{version} not served by every worker within {within_s} s: "
                             f"{[a[2] for a in self.answers[-40:]]}")

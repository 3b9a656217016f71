"""A real Label Studio, started locally as a team runs it: its own venv, SQLite, and its API with a token.

Label Studio is never a dependency of ours. Its venv (about 800 MB, 50 s to install) and a migrated empty data
folder (its first start spends about 25 s on database migrations) are built once and kept under
~/.cache/textclf (TEXTCLF_TOOL_CACHE), as pip keeps its cache; a run with both cached starts it in about 12 s.
On a machine without them, the test session builds them in the background from its start (tests/conftest.py),
so the wait overlaps the tests before it.

  python -m tests.label_studio                     build the cached venv and data folder now
  python -m tests.label_studio --screenshot PNG    the task page with the champion's pre-annotation (README)
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.servers import end, free_port

VERSION = "1.23.2"
USER, PASSWORD = "reviewer@textclf.local", "textclf-reviewer"
TOKEN = "5c0f3e9a1d7b4c2e8f6a0b9d3e7c1f4a2b8d6e0c"  # a legacy API token, set at start, so tests need no UI
STARTED = re.compile(r"Starting development server at (http://127\.0\.0\.1:\d+)/")
CACHE = Path(os.environ.get("TEXTCLF_TOOL_CACHE", Path.home() / ".cache" / "textclf"))


def prepared() -> bool:
    return (CACHE / f"label-studio-{VERSION}" / ".installed").is_file() and (template_path() / ".ready").is_file()


def prepare() -> Path:
    """The venv and the template data folder, built once; a second caller waits for the first (a file lock)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"label-studio-{VERSION}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return template()


def venv() -> Path:
    """Label Studio's own virtual environment, installed once."""
    path = CACHE / f"label-studio-{VERSION}"
    if (path / ".installed").is_file():
        return path
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    # No byte-compiling at install: its first start compiles what it imports, into the cached venv.
    done = subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "--no-compile", f"label-studio=={VERSION}"], capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"installing label-studio=={VERSION} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    (path / ".installed").write_text(VERSION)
    return path


OFFLINE = {"SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "COLLECT_ANALYTICS": "false", "LATEST_VERSION_CHECK": "false"}
# Whatever configures a Label Studio or a Django database elsewhere on this machine stays out of this one, and our
# checkout stays out of its imports.
FOREIGN = ("PYTHONPATH", "LABEL_STUDIO_", "DJANGO_", "DATABASE_", "POSTGRE_", "MYSQL_", "SENTRY_")


def _environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    # offline and quiet: no error reports, analytics or version checks leave the machine
    return {**env, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "DJANGO_DB": "sqlite", "PYTHONUNBUFFERED": "1",
            **OFFLINE}


@dataclass
class LabelStudio:
    url: str
    process: subprocess.Popen
    log_path: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Token {TOKEN}"}, timeout=60)

    def stop(self) -> None:
        end(self.process, grace_s=20)


def _start(data_dir: Path, log_path: Path, timeout: float) -> LabelStudio:
    port = free_port()
    command = [str(venv() / "bin" / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1",
               "--port", str(port), "--data-dir", str(data_dir), "--username", USER, "--password", PASSWORD,
               "--user-token", TOKEN, "--enable-legacy-api-token"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=_environment(data_dir), stdout=log, stderr=subprocess.STDOUT,
                                   cwd=data_dir)
    server = LabelStudio("", process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"label-studio exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        # It moves to the next port when the chosen one was taken meanwhile: ask it where it listens.
        started = STARTED.search(log_path.read_text(errors="replace"))
        if started:
            server.url = started.group(1)
            try:
                if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    server.stop()
    raise TimeoutError(f"label-studio not up after {timeout}s:\n{log_path.read_text()[-4000:]}")


def template_path() -> Path:
    return CACHE / f"label-studio-{VERSION}-data"


def template() -> Path:
    """An empty, migrated data folder with the reviewer's account, made once."""
    path = template_path()
    if (path / ".ready").is_file():
        return path
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    _start(path, CACHE / f"label-studio-{VERSION}-template.log", timeout=300).stop()
    (path / ".ready").write_text(VERSION)
    return path


def start_label_studio(work: Path, timeout: float = 180.0) -> LabelStudio:
    """Label Studio on a free loopback port, on a fresh copy of the template's SQLite data."""
    data_dir = work / "label-studio-data"
    shutil.copytree(prepare(), data_dir)
    return _start(data_dir, work / "label-studio.log", timeout)


def session_cookies(studio: LabelStudio) -> list[dict]:
    """Log the reviewer in through the login form, as a browser does: the session cookie for DevTools."""
    with httpx.Client(base_url=studio.url, timeout=30) as web:
        csrf = web.get("/user/login/").cookies["csrftoken"]
        web.post("/user/login/", data={"email": USER, "password": PASSWORD, "csrfmiddlewaretoken": csrf},
                 headers={"Referer": studio.url + "/user/login/"})
        if "sessionid" not in web.cookies:
            raise RuntimeError(f"logging {USER} in to {studio.url} failed: no session cookie")
        return [{"name": c.name, "value": c.value, "domain": "127.0.0.1", "path": "/"} for c in web.cookies.jar]


def task_page(bundle: Path, png: Path, texts: int = 400) -> Path:
    """The review queue of `bundle` over held-out texts as a Label Studio project; its first task's page."""
    import pandas as pd

    from monitoring.label_studio import labeling_config, tasks
    from serving.predictor import OnnxPredictor
    from tests.browser import Chromium

    predictor = OnnxPredictor(bundle)
    sample = pd.read_parquet("data/processed/test.parquet")["text"].head(texts).tolist()
    answers, _ = predictor.predict_with_ids(sample)
    queue = sorted(({"id": f"p{i}", "text": t, "predicted": a["label"], "score": float(a["score"]),
                     "model_version": predictor.info.version, "count": 1}
                    for i, (t, a) in enumerate(zip(sample, answers, strict=True))), key=lambda row: row["score"])[:20]
    with tempfile.TemporaryDirectory() as work:
        studio, browser = start_label_studio(Path(work)), None
        try:
            browser = Chromium()
            with studio.api() as api:
                pid = api.post("/api/projects", json={"title": "textclf review queue",
                                                      "label_config": labeling_config(predictor.labels)}).json()["id"]
                api.post(f"/api/projects/{pid}/import", json=tasks(queue)).raise_for_status()
                first = api.get("/api/tasks", params={"project": pid}).json()["tasks"][0]["id"]
            browser.screenshot(f"{studio.url}/projects/{pid}/data?task={first}", png, session_cookies(studio))
        finally:
            if browser is not None:
                browser.close()
            studio.stop()
    return png


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--screenshot", type=Path, help="write the task page here (needs artifacts/bundle)")
    p.add_argument("--bundle", type=Path, default=Path("artifacts/bundle"))
    args = p.parse_args()
    print(task_page(args.bundle, args.screenshot) if args.screenshot else prepare())

"""The `serve` extra alone (what the Docker image installs) serves the bundle, without torch.

Builds a fresh virtual environment, so it is slow; pip reaches the package index and reuses its cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from serving.releases import publish
from tests.servers import REPO, start_server


@pytest.mark.slow
def test_serve_extra_alone_serves_without_torch(bundle: Path, predictor, tmp_path: Path, monkeypatch) -> None:
    # A PYTHONPATH pointing at the checkout (as developers often export) would make it importable in the
    # serve-only environment and hide what the image really contains.
    monkeypatch.delenv("PYTHONPATH", raising=False)
    # Copy only what the Dockerfile copies, so the install cannot lean on anything else in the checkout.
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    # serving/ alone, less the MLflow Model's code (.dockerignore): the ground floor needs nothing else of ours.
    shutil.copytree(REPO / "serving", source / "serving", ignore=shutil.ignore_patterns("__pycache__", "pyfunc.py"))
    readme = REPO / "README.md"
    (source / "README.md").write_text(readme.read_text() if readme.exists() else "textclf\n")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Byte-compiling what is installed proves nothing here and costs seconds.
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-compile", "-q"]
    install = subprocess.run([*pip, f"{source}[serve]"], capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    # Run from an empty directory so the installed package, not the checkout, is what gets imported.
    workdir = tmp_path / "run"
    workdir.mkdir()
    python = str(venv / "bin" / "python")
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True, cwd=workdir)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
    for heavy in ("lightning", "mlflow", "training", "sklearn", "pandas", "matplotlib"):  # report libraries stay out
        found = subprocess.run([python, "-c", f"import {heavy}"], capture_output=True, cwd=workdir)
        assert found.returncode != 0, f"{heavy} is importable in the serve-only environment"
    env = {"PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    channel = tmp_path / "releases"  # the image follows a release channel as `make serve` does
    release = publish(bundle, channel, "serve-only check")
    server = start_server(channel, tmp_path / "serve.log", env=env, bentoml=venv / "bin" / "bentoml", cwd=workdir)
    try:
        texts = ["这本书很好看", "质量太差了", ""]
        response = httpx.post(server.url + "/classify", json={"texts": texts}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.headers["x-model-version"] == release.version
        assert [r["label"] for r in response.json()] == [r["label"] for r in predictor.predict_with_ids(texts)[0]]
        assert httpx.get(server.url + "/model", timeout=10).status_code == 200
        feedback = {"id": response.json()[0]["id"], "label": predictor.labels[0]}
        assert httpx.post(server.url + "/feedback", json=feedback, timeout=30).status_code == 200
    finally:
        server.stop()

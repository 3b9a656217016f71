"""A throwaway copy of the project in its own git + DVC repo, with a tiny corpus and tiny params."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from pipelines.params import parse_params
from tests.conftest import REPO, make_texts, tiny_params

COPIED = ("pipelines", "training", "serving", "monitoring", "checks", "data/feedback", "dvc.yaml", ".gitignore",
          ".dvcignore")


def env(tmp: Path, **extra: str) -> dict[str, str]:
    """PATH first to this venv, the BentoML store inside the temp folder, nothing phoning home."""
    return {
        **os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(tmp), "BENTOML_HOME": str(tmp / "bentoml"), "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true", "BENTOML_DO_NOT_TRACK": "true", "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", **extra,
    }


def sh(tmp: Path, *cmd: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=tmp, env=env(tmp, **extra), capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        tail = f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{tail}")
    return done


def make_project(tmp: Path, **param_sections: dict) -> Path:
    for name in COPIED:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp / name)
    for cache in tmp.rglob("__pycache__"):
        shutil.rmtree(cache)
    make_texts(60).to_csv(tmp / "corpus.csv", index=False)
    write_params(tmp, tiny_params("corpus.csv", **param_sections))
    sh(tmp, "git", "init", "-q")
    sh(tmp, "dvc", "init", "-q")
    sh(tmp, "dvc", "config", "core.analytics", "false")
    sh(tmp, "git", "add", "-A")
    sh(tmp, "git", "commit", "-qm", "project")
    return tmp


def write_params(tmp: Path, params: dict) -> None:
    """Every section written out in full, as DVC tracks params by key."""
    params = parse_params(params).model_dump(mode="json")
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def read_params(tmp: Path) -> dict:
    return yaml.safe_load((tmp / "params.yaml").read_text(encoding="utf-8"))

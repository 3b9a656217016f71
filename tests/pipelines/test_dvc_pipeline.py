"""`dvc repro` end to end in a throwaway git repo, real MLflow (sqlite) and a real BentoML store.

One project is built per module and the tests run in file order on it: a full repro, a no-op repro,
a one-model change, the promotion gate, experiments, a DVC remote, the rollout, the behavioural floor,
the production loop.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_texts
from tests.pipelines.project import env, make_project, read_params, sh, write_params
from tests.servers import VENV_BIN, Server, free_port

pytestmark = pytest.mark.slow
MODELS = ("textrnn", "rcnn", "bilstm", "tfidf")
ALL_STAGES = {"ingest", "preprocess", "pretrain", *(f"{stage}@{m}" for stage in ("train", "evaluate") for m in MODELS),
              "ensemble", "select", "export", "package"}


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = make_project(tmp_path_factory.mktemp("project"))
    first = sh(tmp, "dvc", "repro")
    assert ran(first.stdout) == ALL_STAGES
    sh(tmp, "git", "add", "-A")
    sh(tmp, "git", "commit", "-qm", "first repro")
    return tmp


def client(project):
    return mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


@pytest.fixture
def registry(project, monkeypatch):
    """MLflow's fluent API (pyfunc.load_model, models:/ URIs) pointed at the project's store, for one test:
    set_tracking_uri also exports MLFLOW_TRACKING_URI, which later `dvc repro` runs would inherit."""
    uri = f"sqlite:///{project / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


TEXTS = ["好 喜欢 great", "差 失望 bad", "推荐", "  "]


def test_full_repro_writes_every_output(project):
    for path in ("data/processed/report.json", "metrics/best.json", "metrics/export.json",
                 "artifacts/bundle/model.onnx", "artifacts/bundle/tokenizer.json", "artifacts/bundle/meta.json",
                 "artifacts/bento_model.json", *(f"metrics/{m}.json" for m in MODELS)):
        assert (project / path).is_file(), path
    best = json.loads((project / "metrics/best.json").read_text())
    assert best["promoted"] is True and best["champion"]["version"] == "1"
    pointer = json.loads((project / "artifacts/releases/champion.json").read_text())
    assert pointer["version"] == "1" and (project / "artifacts/releases" / pointer["bundle"] / "model.onnx").is_file()
    export = json.loads((project / "metrics/export.json").read_text())
    assert export["parity"]["max_abs_diff"] <= 1e-5
    meta = json.loads((project / "artifacts/bundle/meta.json").read_text())
    assert meta["labels"] == ["neg", "pos"] and meta["model_name"] == best["model"]
    # The served scores are calibrated: the candidate's temperature is in the graph, its ECE in the bundle.
    candidate = json.loads((project / "metrics/candidate.json").read_text())
    assert meta["calibration"] == candidate["calibration"] and candidate["calibration"]["temperature"] > 0
    assert 0 <= candidate["calibration"]["test_ece"] <= 1 and candidate["calibration"]["bins"] == 15
    assert candidate["chosen_because"] and all("cost_ms_per_text" in c for c in candidate["candidates"].values())


def test_champion_is_a_pyfunc_mlflow_model(project, registry):
    """models:/textclf@champion loads with MLflow alone and scores exactly as the exported bundle does."""
    from serving.predictor import OnnxPredictor

    model = mlflow.pyfunc.load_model("models:/textclf@champion")
    out = model.predict(pd.DataFrame({"text": TEXTS}))
    expected = OnnxPredictor(project / "artifacts/bundle").probabilities(TEXTS)
    assert list(out.columns) == ["label", "score_neg", "score_pos"]
    assert np.abs(out[["score_neg", "score_pos"]].to_numpy() - expected).max() <= 1e-6
    assert out["label"].tolist() == [["neg", "pos"][k] for k in expected.argmax(axis=1)]
    signature = model.metadata.signature
    assert signature.inputs.input_names() == ["text"]
    assert signature.outputs.input_names() == ["label", "score_neg", "score_pos"]
    folder = mlflow.artifacts.download_artifacts("models:/textclf@champion")
    requirements = (Path(folder) / "requirements.txt").read_text()
    assert "onnxruntime-gpu==" in requirements and "bentoml==" in requirements and "torch" not in requirements
    assert json.loads((project / "artifacts/bundle/meta.json").read_text())["model_uri"] == "models:/textclf/1"


def test_mlflow_models_serve_answers_invocations(project, registry, tmp_path):
    """`mlflow models serve -m models:/textclf@champion --env-manager local` as a process, over HTTP."""
    from serving.predictor import OnnxPredictor

    port = free_port()
    log = (tmp_path / "mlflow-serve.log").open("wb")
    process = subprocess.Popen(
        [str(VENV_BIN / "mlflow"), "models", "serve", "-m", "models:/textclf@champion", "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        cwd=project, env=env(project, MLFLOW_TRACKING_URI=registry), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", process, tmp_path / "mlflow-serve.log")
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{server.url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, server.log()
            time.sleep(0.5)
        answer = httpx.post(f"{server.url}/invocations", json={"dataframe_records": [{"text": t} for t in TEXTS]},
                            timeout=30)
        assert answer.status_code == 200, answer.text
        rows = answer.json()["predictions"]
        expected = OnnxPredictor(project / "artifacts/bundle").probabilities(TEXTS)
        got = np.array([[row["score_neg"], row["score_pos"]] for row in rows])
        assert np.abs(got - expected).max() <= 1e-6
        bad = httpx.post(f"{server.url}/invocations", json={"dataframe_records": [{"txt": "x"}]}, timeout=30)
        assert bad.status_code == 400 and "text" in bad.text
    finally:
        server.stop()


def test_mlflow_ui_shows_runs_datasets_and_the_logged_model(project):
    """What the MLflow UI reads: experiment kind, run inputs, lr curve names, the model linked to its metrics."""
    c = client(project)
    experiment = c.get_experiment_by_name("textclf-corpus")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    digest = None
    for run in c.search_runs([experiment.experiment_id]):
        inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
        assert set(inputs) == {"train", "val", "test"}, run.data.tags["model"]
        digest = {d.dataset.digest for d in inputs.values()}
        assert digest == {run.data.tags["data_hash"]}
        if run.data.tags["model"] not in ("ensemble", "tfidf"):  # those two are not trained by gradient descent
            lr = {k for k in run.data.metrics if k.startswith("lr-")}
            assert "lr-AdamW/network" in lr and not any(re.search(r"/pg\d", k) for k in lr), lr
    version = c.get_model_version_by_alias("textclf", "champion")
    logged = c.get_logged_model(version.source.removeprefix("models:/"))  # a logged model, not a run folder
    assert logged.source_run_id == version.run_id
    linked = {(m.key, m.dataset_name) for m in logged.metrics}
    assert {("val_macro_f1_final", "val"), ("test_macro_f1_final", "test")} <= linked


def test_second_repro_is_a_no_op(project):
    again = sh(project, "dvc", "repro")
    assert ran(again.stdout) == set() and "Data and pipelines are up to date" in again.stdout


def test_metrics_and_plots_cover_all_models(project):
    shown = sh(project, "dvc", "metrics", "show", "--json").stdout
    metrics = json.loads(shown)
    files = next(iter(metrics.values()))["data"]
    candidates = (*MODELS, "ensemble")
    assert {f"metrics/{c}.json" for c in candidates} | {f"metrics/checks/{c}.json" for c in candidates} <= set(files)
    plots = json.loads(sh(project, "dvc", "plots", "show", "--json").stdout)
    assert not plots.get("errors") and {f"metrics/curves/{m}.csv" for m in MODELS} | {
        f"metrics/confusion/{c}.csv" for c in candidates} <= set(plots["data"])


def test_mlflow_holds_each_training_run(project):
    c = client(project)
    experiment = c.get_experiment_by_name("textclf-corpus")
    runs = c.search_runs([experiment.experiment_id])
    # Only classifiers here, so select-all → Compare compares like with like; the LMs have their own experiment.
    assert sorted(r.data.tags["model"] for r in runs) == ["bilstm", "ensemble", "rcnn", "textrnn", "tfidf"]
    lm_runs = c.search_runs([c.get_experiment_by_name("textclf-corpus-lm").experiment_id])
    # lm_transfer: embedding takes the forward model's embedding only, so no backward model is trained.
    assert sorted(r.data.tags["model"] for r in lm_runs) == ["lm-forward"]
    runs += lm_runs
    # A run left RUNNING shows in the UI as still training: every stage must end the run it opened.
    assert {r.data.tags["model"]: r.info.status for r in runs} == {r.data.tags["model"]: "FINISHED" for r in runs}
    for run in runs:
        # Every candidate is calibrated on val: its temperature, ECE and reliability diagram are on its run.
        if run.data.tags["model"] != "ensemble" and not run.data.tags["model"].startswith("lm-"):
            assert {"temperature", "val_ece_final", "test_ece_final", "cost_ms_per_text"} <= set(run.data.metrics)
            assert "reliability_diagram.png" in {a.path for a in c.list_artifacts(run.info.run_id)}
        if run.data.tags["model"] == "ensemble":  # its members' runs hold their checkpoints
            assert {"test_accuracy_final", "val_macro_f1_final", "temperature", "test_ece_final"} \
                <= set(run.data.metrics)
            record = json.loads((project / "metrics/checks/ensemble.json").read_text())
            assert run.data.params["members"] == ",".join(record["members"]) and len(record["members"]) >= 2
            assert len(record["subsets"]) == 11 and record["members_chosen_because"]  # every subset of 2+ of 4
            assert run.data.tags["members_chosen_because"] == record["members_chosen_because"]
            assert "ensemble/subsets.json" in {a.path for a in c.list_artifacts(run.info.run_id, "ensemble")}
            for m in record["members"]:
                member = c.get_run(run.data.tags[f"member.{m}"])
                assert member.data.tags["model"] == m
                assert {a.path for a in c.list_artifacts(member.info.run_id, "checkpoint")} == {
                    "checkpoint/best.ckpt", "checkpoint/tokenizer.json"}
            continue
        if run.data.tags["model"].startswith("lm-"):
            assert "val_ppl" in run.data.metrics and run.data.params["pretrain.bptt"] == "8"
            assert "samples.txt" in {a.path for a in c.list_artifacts(run.info.run_id)}
            continue
        if run.data.tags["model"] == "tfidf":  # fitted by scikit-learn: no LM, no epochs; C chosen on val
            assert run.data.params["initialised_from_lm"] == "False" and float(run.data.params["fit.C"]) > 0
            assert {"val_macro_f1", "test_accuracy_final"} <= set(run.data.metrics)
            continue
        assert run.data.params["initialised_from_lm"] == "True"
        model = run.data.tags["model"]
        assert {"git_commit", "git_dirty", "data_hash"} <= set(run.data.tags)
        assert run.data.params[f"train.{model}.hidden_size"] == "16"
        assert run.data.params["train.trainer.batch_size"] == "16"
        assert {"val_macro_f1", "train_loss", "val_loss", "test_accuracy_final", "test_macro_f1_final"} \
            <= set(run.data.metrics)
        history = c.get_metric_history(run.info.run_id, "val_macro_f1")
        assert len(history) == 2  # one point per epoch
        artifacts = {a.path for a in c.list_artifacts(run.info.run_id)}
        assert {"checkpoint", "confusion_matrix.png", "curves", "metrics"} <= artifacts


def test_one_model_change_reruns_only_that_model(project):
    params = read_params(project)
    params["train"]["textrnn"]["fc_hidden"] = 12
    write_params(project, params)
    out = sh(project, "dvc", "repro").stdout
    promoted = json.loads((project / "metrics/best.json").read_text())["promoted"]
    assert ran(out) == {"train@textrnn", "evaluate@textrnn", "ensemble", "select", "export"} | (
        {"package"} if promoted else set())


def test_the_models_to_train_come_from_params(project):
    """train.models decides what trains and what the ensemble averages; models already trained don't rerun."""
    params = read_params(project)
    params["train"]["models"] = ["rcnn", "tfidf"]
    write_params(project, params)
    try:
        out = sh(project, "dvc", "repro").stdout
        assert {"ensemble", "select"} <= ran(out) <= {"ensemble", "select", "export", "package"}
        assert json.loads((project / "metrics/checks/ensemble.json").read_text())["members"] == ["rcnn", "tfidf"]
        candidate = json.loads((project / "metrics/candidate.json").read_text())
        assert set(candidate["candidates"]) == {"rcnn", "tfidf", "ensemble"}
    finally:
        params["train"]["models"] = list(MODELS)
        write_params(project, params)


def test_worse_model_does_not_take_champion_and_the_bundle_comes_back_from_the_registry(project):
    """A candidate below the gate is not promoted. With no bundle on disk (a fresh clone, another machine), export
    then fetches the champion's bundle from its MLflow Model."""
    from training.tokenizer import file_sha256

    c = client(project)
    champion = c.get_model_version_by_alias("textclf", "champion")
    bundle_before = json.loads((project / "artifacts/bundle/meta.json").read_text())
    shutil.rmtree(project / "artifacts/bundle")
    params = read_params(project)
    params["select"]["min_val_f1"] = 1.0
    write_params(project, params)
    sh(project, "dvc", "repro")
    best = json.loads((project / "metrics/best.json").read_text())
    assert best["promoted"] is False and "below select.min_val_f1" in best["reason"]
    assert c.get_model_version_by_alias("textclf", "champion").version == champion.version
    meta = json.loads((project / "artifacts/bundle/meta.json").read_text())
    assert meta["version"] == bundle_before["version"]
    assert file_sha256(project / "artifacts/bundle/model.onnx") == champion.tags["onnx_sha256"]
    assert (meta["version"], meta["model_uri"]) == (str(champion.version), f"models:/textclf/{champion.version}")


def test_failed_parity_keeps_the_champion(project):
    """A candidate that passes the gate but fails ONNX parity is never registered and never champion."""
    c = client(project)
    champion = c.get_model_version_by_alias("textclf", "champion")
    versions = len(c.search_model_versions("name = 'textclf'"))
    bundle_before = (project / "artifacts/bundle/meta.json").read_text()
    c.set_model_version_tag("textclf", champion.version, "val_macro_f1", "0")  # any candidate beats it
    params = read_params(project)
    params["select"]["min_val_f1"] = 0.0
    params["export"]["parity_atol"] = 1e-12  # no export meets it
    write_params(project, params)
    try:
        sh(project, "dvc", "repro")
        best = json.loads((project / "metrics/best.json").read_text())
        assert best["gate_passed"] is True and best["promoted"] is False and best["parity"]["passed"] is False
        assert "failed parity" in best["reason"] and best["registered_version"] is None
        assert c.get_model_version_by_alias("textclf", "champion").version == champion.version
        assert len(c.search_model_versions("name = 'textclf'")) == versions
        assert (project / "artifacts/bundle/meta.json").read_text() == bundle_before
    finally:  # the later tests share this project
        c.set_model_version_tag("textclf", champion.version, "val_macro_f1", champion.tags["val_macro_f1"])
        params["export"]["parity_atol"] = 1e-5
        write_params(project, params)


def test_experiments_named_and_swept_through_the_queue(project):
    """A small named grid queued and run the way the README shows, each experiment rerunning only what its
    params change, compared in `dvc exp show` and in MLflow."""
    sh(project, "git", "add", "-A")
    sh(project, "git", "commit", "-qm", "gate params")
    uri = f"sqlite:///{project / 'mlflow.db'}"  # queued runs work in a copy: point them at this store
    queued = sh(project, "dvc", "exp", "run", "--queue", "-n", "bilstm-attention",
                "-S", "train.bilstm.attention_size=4,12", MLFLOW_TRACKING_URI=uri).stdout
    assert "Queued experiment 'bilstm-attention-1'" in queued and "Queued experiment 'bilstm-attention-2'" in queued
    sh(project, "dvc", "exp", "run", "--run-all", MLFLOW_TRACKING_URI=uri)
    out = sh(project, "dvc", "queue", "logs", "bilstm-attention-1").stdout
    assert "train@bilstm" in ran(out) and "train@rcnn" not in ran(out)
    table = json.dumps(json.loads(sh(project, "dvc", "exp", "show", "--json").stdout))
    assert "bilstm-attention-1" in table and "bilstm-attention-2" in table
    assert '"attention_size": 4' in table and '"attention_size": 12' in table
    c = client(project)
    experiment = c.get_experiment_by_name("textclf-corpus").experiment_id
    runs = c.search_runs([experiment], filter_string="tags.model = 'bilstm'")
    swept = sorted((r.data.tags["dvc_experiment"], r.data.params["train.bilstm.attention_size"]) for r in runs
                   if r.data.tags.get("dvc_experiment"))
    assert swept == [("bilstm-attention-1", "4"), ("bilstm-attention-2", "12")]  # one run each


def test_push_and_pull_through_a_local_remote(project, tmp_path):
    sh(project, "dvc", "remote", "add", "-d", "-f", "local", str(tmp_path / "remote"))
    sh(project, "dvc", "push")
    before = (project / "data/processed/train.parquet").read_bytes()
    shutil.rmtree(project / ".dvc/cache")
    (project / "data/processed/train.parquet").unlink()
    sh(project, "dvc", "pull")
    assert (project / "data/processed/train.parquet").read_bytes() == before


def test_packaged_champion_is_served_from_the_bentoml_store(project, tmp_path):
    """The package stage's model-store entry, served by `bentoml serve` as `make serve` runs it."""
    import httpx

    from tests.servers import start_server

    tag = json.loads((project / "artifacts/bento_model.json").read_text())["tag"]
    server = start_server(project / "no-such-bundle", tmp_path / "serve.log",
                          env={"TEXTCLF_BENTO_MODEL": tag, "BENTOML_HOME": str(project / "bentoml")})
    try:
        card = httpx.get(f"{server.url}/model", timeout=10).json()
        meta = json.loads((project / "artifacts/bundle/meta.json").read_text())
        assert (card["model_name"], card["version"], card["labels"]) == (meta["model_name"], meta["version"],
                                                                         meta["labels"])
        answer = httpx.post(f"{server.url}/classify", json={"texts": ["好 喜欢 great", "差 失望 bad"]}, timeout=30)
        assert answer.status_code == 200
        assert [set(item["scores"]) for item in answer.json()] == [{"neg", "pos"}] * 2
    finally:
        server.stop()


def test_the_service_follows_promotion_and_rollback_under_load(project, registry, tmp_path):
    """`make serve` follows artifacts/releases: a promotion by `dvc repro` and `pipelines.rollback` both reach
    the running service within 30 s with no failed request; rollback refuses what it must, and a later
    `dvc repro` does not undo it."""
    from tests.servers import Load, start_server

    c = client(project)
    sh(project, "dvc", "repro")  # whatever earlier tests left stale, settle it first
    before = c.get_model_version_by_alias("textclf", "champion")
    pointer = json.loads((project / "artifacts/releases/champion.json").read_text())
    assert pointer["version"] == str(before.version)
    server = start_server(project / "artifacts/releases", tmp_path / "serve.log",
                          env={"TEXTCLF_RELOAD_INTERVAL_S": "0.5"})
    c.set_model_version_tag("textclf", before.version, "val_macro_f1", "0")  # any candidate beats it
    try:
        sh(project, "dvc", "repro", "-f", "-s", "select")  # the gate sees that now, whatever ran before
        # Steady traffic (six connections, 0.1 s between a client's answers) rather than a saturating load: the
        # point is that no request to any worker fails while the pipeline and the rollbacks run beside it, and
        # they need the cores.
        with Load(server.url, TEXTS[:3], pause_s=0.1) as load:
            # A new version of the same candidate: the pyfunc's code is part of what a version is.
            with (project / "serving/pyfunc.py").open("a") as f:
                f.write("# a new build\n")
            moved = time.monotonic()
            sh(project, "dvc", "repro")
            best = json.loads((project / "metrics/best.json").read_text())
            promoted = best["champion"]["version"]
            assert best["promoted"] is True and promoted != str(before.version)
            load.wait_for(promoted, moved, within_s=30 + time.monotonic() - moved)

            moved = time.monotonic()
            sh(project, sys.executable, "-m", "pipelines.rollback")
            load.wait_for(str(before.version), moved)
            best = json.loads((project / "metrics/best.json").read_text())
            assert best["rollback"]["from"] == promoted and best["rollback"]["to"] == str(before.version)
            assert best["champion"]["version"] == str(before.version)

            redo = sh(project, "dvc", "repro").stdout  # the rolled-back version is not promoted again
            best = json.loads((project / "metrics/best.json").read_text())
            assert "export" in ran(redo) and best["promoted"] is False and "rolled back" in best["reason"]
            with (project / "serving/pyfunc.py").open("a") as f:  # nor the same model registered anew
                f.write("# another build\n")
            sh(project, "dvc", "repro")
            best = json.loads((project / "metrics/best.json").read_text())
            assert best["promoted"] is False and f"model of v{promoted}, which was rolled back" in best["reason"]
            assert c.get_model_version_by_alias("textclf", "champion").version == before.version
            time.sleep(2)
        statuses = [a[1] for a in load.answers]
        assert statuses.count(200) == len(statuses) > 100, {s: statuses.count(s) for s in set(statuses)}
        assert {a[2] for a in load.answers} == {str(before.version), promoted}
    finally:
        server.stop()
        c.set_model_version_tag("textclf", before.version, "val_macro_f1", before.tags["val_macro_f1"])

    lost, taken = c.get_model_version("textclf", promoted), c.get_model_version("textclf", before.version)
    assert {"champion_taken_at", "champion_lost_at", "rolled_back_at"} <= set(lost.tags)
    assert taken.tags["champion_taken_at"] == lost.tags["champion_lost_at"] == lost.tags["rolled_back_at"]
    history = json.loads(c.get_registered_model("textclf").tags["champion_history"])
    assert [(h["version"], h["by"]) for h in history[-2:]] == [(promoted, "export"), (str(before.version), "rollback")]
    bento = json.loads((project / "artifacts/bento_model.json").read_text())
    assert bento["release"]["version"] == str(before.version)

    # Refusals name why and change nothing.
    unregistered = c.create_model_version("textclf", source=lost.source, run_id=lost.run_id)  # no parity record
    dead = f"http://127.0.0.1:{free_port()}"
    for args, extra, why in [(["--to", "999"], {}, "has no version 999"),
                             (["--to", str(unregistered.version)], {}, "no record of passing ONNX parity"),
                             ([], {"MLFLOW_TRACKING_URI": dead}, "cannot read textclf@champion")]:
        done = sh(project, sys.executable, "-m", "pipelines.rollback", *args, check=False, **extra)
        assert done.returncode == 2 and why in done.stderr, done.stderr[-2000:]
    assert c.get_model_version_by_alias("textclf", "champion").version == before.version

    # A second plain rollback walks further back, never to the version just rolled back from.
    again = sh(project, sys.executable, "-m", "pipelines.rollback", check=False)
    if again.returncode == 0:
        assert c.get_model_version_by_alias("textclf", "champion").version not in (promoted, before.version)
        sh(project, sys.executable, "-m", "pipelines.rollback", "--to", str(before.version))
    else:
        assert again.returncode == 2 and "no earlier champion on record" in again.stderr, again.stderr[-2000:]

    # Pinning a version chosen on purpose clears its rolled-back mark.
    sh(project, sys.executable, "-m", "pipelines.rollback", "--to", promoted)
    assert "rolled_back_at" not in c.get_model_version("textclf", promoted).tags
    assert json.loads((project / "artifacts/releases/champion.json").read_text())["version"] == promoted
    sh(project, sys.executable, "-m", "pipelines.rollback", "--to", str(before.version))


def test_candidate_below_the_behavioural_floor_is_not_promoted(project, tmp_path):
    """Runs after the experiments and the rollout: its checklist reruns every evaluate, and the tests before
    it then start from a settled project instead of rerunning them in each experiment."""
    c = client(project)
    before = c.get_model_version_by_alias("textclf", "champion").version
    (project / "checks/corpus.yaml").write_text(
        'dataset: corpus\n'
        'minimum_functionality:\n'
        '  - {id: mft-ok, text: "差 失望 bad", label: neg}\n'
        '  - {id: mft-wrong, text: "好 喜欢 great 推荐", label: neg}\n'  # every sane model says pos
        'invariance:\n'
        '  - {id: inv-1, perturbation: punctuation, text: "好 喜欢", variant: "好 喜欢!"}\n'
        'directional:\n'
        '  - {id: dir-1, perturbation: add_negative, text: "好 喜欢", variant: "好 喜欢 差 失望 烂", toward: neg}\n',
        encoding="utf-8")
    params = read_params(project)
    params["select"]["min_val_f1"] = 0.0
    try:
        params["check"]["floors"]["minimum_functionality"] = 1.0
        write_params(project, params)
        out = sh(project, "dvc", "repro").stdout
        assert {f"evaluate@{m}" for m in MODELS} | {"ensemble"} <= ran(out)
        best = json.loads((project / "metrics/best.json").read_text())
        assert best["promoted"] is False and "no candidate passes the behavioural floors" in best["reason"]
        assert "mft-wrong" in best["reason"] and "minimum_functionality 50.0% < 100%" in best["reason"]
        assert c.get_model_version_by_alias("textclf", "champion").version == before
        checks = json.loads((project / "metrics/checks/rcnn.json").read_text())
        assert checks["counts"]["invariance"]["cases"] == 1 and checks["passed"] is False
        run_id = json.loads((project / "models/rcnn/train.json").read_text())["mlflow_run_id"]
        run = c.get_run(run_id)
        assert run.data.metrics["check_minimum_functionality_pass_rate"] == 0.5
        assert run.data.tags["behavioural_checks"] == "failed"
        assert "checks/rcnn.json" in {a.path for a in c.list_artifacts(run_id, "checks")}
        # With no champion to fall back on, select stops the pipeline before export and names the cases.
        shutil.copytree(project / "metrics", tmp_path / "metrics")
        fresh = sh(project, "python", "-m", "pipelines.select", "--metrics", str(tmp_path / "metrics"), check=False,
                   MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'empty.db'}")
        assert fresh.returncode == 2 and "Nothing to export" in fresh.stderr and "mft-wrong" in fresh.stderr
    finally:  # the tests after this one share the project
        (project / "checks/corpus.yaml").unlink()
        params["check"]["floors"]["minimum_functionality"] = 0.9
        write_params(project, params)


# --- the production loop on this project's champion: logged traffic → monitor → feedback → snapshot → repro ---

@pytest.fixture(scope="module")
def served(project, tmp_path_factory):
    """The champion served as `make serve` does, its prediction log and feedback in a store of its own."""
    from tests.servers import start_server

    logs = tmp_path_factory.mktemp("served")
    server = start_server(project / "artifacts/bundle", logs / "serve.log", env={"TEXTCLF_WORKERS": "1"})
    yield server, f"sqlite:///{logs / 'feedback.db'}"
    server.stop()


def iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat()


def send(server: Server, texts: list[str]) -> tuple[list[dict], str, str]:
    """Classify `texts` in requests of 16; (answers, window start, window end) around the traffic."""
    start = time.time()
    answers = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for i in range(0, len(texts), 16):
            response = http.post("/classify", json={"texts": texts[i : i + 16]})
            assert response.status_code == 200, response.text
            answers += response.json()
    time.sleep(1.0)  # the writer thread commits within its 0.2 s flush interval
    return answers, iso(start), iso(time.time())


def monitor(project: Path, store: str, since: str, until: str) -> tuple[int, dict]:
    done = sh(project, sys.executable, "-m", "pipelines.monitor", "--store", store, "--since", since, "--until", until,
              check=False)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return done.returncode, json.loads((project / "metrics/monitor.json").read_text())


def assert_renders_with_a_red_verdict(report: Path, png: Path) -> None:
    """Open the report in headless Chromium, as a person would, and look for the red drift badge."""
    from PIL import Image

    profile = png.parent / "chromium-profile"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
                    "--window-size=1200,900", f"--screenshot={png}", report.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert (pixels == (198, 40, 40)).all(axis=2).sum() > 500  # #c62828, the badge's background


def test_monitor_flags_another_domain_and_one_class_but_not_held_out_traffic(project, served):
    from bench.drift_bench import news_sentences

    server, store = served
    held_out = pd.concat([pd.read_parquet(project / f"data/processed/{s}.parquet") for s in ("val", "test")])
    one_class = make_texts(40, ("neg",), seed=11)["text"].tolist()
    verdicts = {}
    for name, texts in [("held-out", held_out["text"].tolist()), ("one class", one_class),
                        ("news", news_sentences()[:60])]:
        _, since, until = send(server, texts)
        code, summary = monitor(project, store, since, until)
        assert summary["rows"] == len(texts) and summary["window"]["since"] <= summary["window"]["until"]
        assert set(summary["checks"]) == {"text", "labels", "confidence", "length", "unk_share"}
        assert (project / summary["report"]).is_file() and len(summary["review_queue"]) == 20
        verdicts[name] = (code, summary["drift_detected"], set(summary["drifted"]))
        if name == "news":
            assert_renders_with_a_red_verdict(project / summary["report"], project / "report.png")
    assert verdicts["held-out"] == (0, False, set())
    assert verdicts["one class"][:2] == (1, True) and "labels" in verdicts["one class"][2]
    assert verdicts["news"][:2] == (1, True) and "text" in verdicts["news"][2]
    experiment = client(project).get_experiment_by_name("textclf-corpus-monitoring")
    runs = client(project).search_runs([experiment.experiment_id])
    assert len(runs) == 3 and all(r.data.metrics["rows"] > 0 for r in runs)
    assert next(a.path for a in client(project).list_artifacts(runs[0].info.run_id)).endswith(".html")
    empty = sh(project, sys.executable, "-m", "pipelines.monitor", "--store", store, "--since", "2020-01-01",
               "--until", "2020-01-02", check=False)
    assert empty.returncode == 2 and "widen --since" in empty.stderr


def test_feedback_snapshot_reaches_the_next_repro_and_then_it_is_a_no_op(project, served):
    server, store = served
    sh(project, "dvc", "repro", "preprocess")  # whatever earlier tests left stale, settle it first
    train = pd.read_parquet(project / "data/processed/train.parquet")
    flipped_text, old_label = train.iloc[0]["text"], train.iloc[0]["label"]
    new_label = "neg" if old_label == "pos" else "pos"
    fresh = make_texts(15, seed=23)
    answers, _, _ = send(server, [flipped_text, *fresh["text"]])
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for answer, label in zip(answers, [new_label, *fresh["label"]], strict=True):
            assert http.post("/feedback", json={"id": answer["id"], "label": label}).status_code == 200
    before = (project / "dvc.lock").read_text()
    sh(project, sys.executable, "-m", "pipelines.feedback", "--store", store, "snapshot")
    assert (project / "data/feedback/feedback.parquet.dvc").is_file()  # a user commits it
    out = sh(project, "dvc", "repro", "preprocess").stdout
    assert ran(out) == {"ingest", "preprocess"}
    assert (project / "dvc.lock").read_text() != before
    report = json.loads((project / "data/processed/report.json").read_text())
    assert report["feedback"]["rows"] == 1 + len(fresh) and report["feedback"]["labels_overridden"] == 1
    splits = pd.concat([pd.read_parquet(project / f"data/processed/{s}.parquet") for s in ("train", "val", "test")])
    labels = dict(zip(splits["text"], splits["label"], strict=True))
    assert labels[flipped_text] == new_label and all(t in labels for t in fresh["text"])
    assert ran(sh(project, "dvc", "repro", "preprocess").stdout) == set()


def test_label_studio_round_trip_reaches_the_next_train_split(project, served, tmp_path):
    """The review queue into a real Label Studio, reviewers' annotations through its API, its export back as
    feedback, a snapshot, and `dvc repro`: the labels are in the next train split."""
    from tests.label_studio import start_label_studio

    server, store = served
    fresh = make_texts(4, seed=31)  # 4 a class
    truth = dict(zip(fresh["text"], fresh["label"], strict=True))
    _, since, until = send(server, [*fresh["text"], *fresh["text"][:3]])  # three texts seen twice
    feedback = [sys.executable, "-m", "pipelines.feedback", "--store", store]
    sh(project, *feedback, "queue", "ls-tasks.json", "--format", "label-studio", "--config", "ls-config.xml",
       "--since", since, "--until", until)
    tasks = json.loads((project / "ls-tasks.json").read_text(encoding="utf-8"))
    assert sorted(t["data"]["text"] for t in tasks) == sorted(truth)  # one task a text
    assert sorted(t["data"]["count"] for t in tasks) == [1] * 5 + [2] * 3

    studio = start_label_studio(tmp_path)
    try:
        with studio.api() as api:
            created = api.post("/api/projects", json={"title": "textclf review queue",
                                                      "label_config": (project / "ls-config.xml").read_text()})
            assert created.status_code == 201, created.text
            pid = created.json()["id"]
            imported = api.post(f"/api/projects/{pid}/import", json=tasks).json()
            assert (imported["task_count"], imported["prediction_count"]) == (len(tasks), len(tasks))
            listed = api.get("/api/tasks", params={"project": pid, "page_size": 100}).json()["tasks"]
            assert {t["data"]["prediction_id"] for t in listed} == {t["data"]["prediction_id"] for t in tasks}

            def annotate(task: dict, label: str | None) -> None:
                result = [] if label is None else [{"from_name": "label", "to_name": "text", "type": "choices",
                                                    "value": {"choices": [label]}}]
                done = api.post(f"/api/tasks/{task['id']}/annotations",
                                json={"result": result, "was_cancelled": label is None})
                assert done.status_code == 201, done.text

            skipped, twice, *rest = listed
            annotate(skipped, None)  # the reviewer skips one task: nothing is stored for it
            wrong = "neg" if truth[twice["data"]["text"]] == "pos" else "pos"
            annotate(twice, wrong)
            annotate(twice, truth[twice["data"]["text"]])  # corrected: the latest annotation wins
            for task in rest:
                annotate(task, truth[task["data"]["text"]])
            export = api.get(f"/api/projects/{pid}/export", params={"exportType": "JSON"})
            assert export.status_code == 200, export.text
            (project / "ls-export.json").write_bytes(export.content)
    finally:
        studio.stop()

    before = (json.loads((project / "data/processed/report.json").read_text())["feedback"] or {}).get("rows", 0)
    imported = sh(project, *feedback, "import", "ls-export.json").stderr
    assert f"{len(tasks) - 1} label(s) stored" in imported and "1 task(s) without an annotation" in imported
    sh(project, *feedback, "snapshot")
    assert ran(sh(project, "dvc", "repro", "preprocess").stdout) == {"ingest", "preprocess"}
    report = json.loads((project / "data/processed/report.json").read_text())
    assert report["feedback"]["rows"] == before + len(tasks) - 1
    train = pd.read_parquet(project / "data/processed/train.parquet")
    held_out = [pd.read_parquet(project / f"data/processed/{s}.parquet") for s in ("val", "test")]
    everywhere = pd.concat([train, *held_out])
    labels = dict(zip(everywhere["text"], everywhere["label"], strict=True))
    assert skipped["data"]["text"] not in labels
    assert all(labels[t["data"]["text"]] == truth[t["data"]["text"]] for t in [twice, *rest])
    assert set(train["text"]) & {t["data"]["text"] for t in rest}  # in the next train split, as the split puts them

"""Shared fixtures: a tiny, learnable labelled corpus and params small enough to train in seconds."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

REPO = Path(__file__).resolve().parents[1]

WORDS = {
    "pos": ["好", "喜欢", "棒", "满意", "great", "love", "推荐", "精彩"],
    "neg": ["差", "失望", "烂", "退货", "bad", "awful", "垃圾", "无聊"],
    "mid": ["一般", "还行", "普通", "凑合", "okay", "average", "中等", "平常"],
}
FILLER = ["这本书", "质量", "物流", "the book", "价格", "服务", "屏幕", "我觉得", "真的", "非常"]


def make_texts(n_per_class: int, classes: tuple[str, ...] = ("pos", "neg"), seed: int = 0) -> pd.DataFrame:
    """Distinct texts whose label is carried by class-specific words amid shared filler."""
    rng = random.Random(seed)
    rows, seen = [], set()
    for label in classes:
        while sum(1 for r in rows if r[1] == label) < n_per_class:
            parts = rng.sample(FILLER, rng.randint(1, 4)) + rng.sample(WORDS[label], rng.randint(1, 3))
            rng.shuffle(parts)
            text = " ".join(parts) + str(rng.randint(0, 10_000))
            if text not in seen:
                seen.add(text)
                rows.append((text, label))
    return pd.DataFrame(rows, columns=["text", "label"])


TINY_TRAIN = {
    "models": ["textrnn", "rcnn", "bilstm", "tfidf"],  # every model, so the tiny pipeline covers them all
    "trainer": {
        "max_epochs": 2, "batch_size": 16, "lr": 0.01, "patience": 2, "accelerator": "cpu",
        "devices": 1, "bucket_batches": 4, "schedule_epochs": 0, "sentence_views": 0,
    },
    "textrnn": {"embedding_dim": 16, "hidden_size": 16, "fc_hidden": 16},
    "rcnn": {"embedding_dim": 16, "hidden_size": 16, "projection_size": 16},
    "bilstm": {"embedding_dim": 16, "hidden_size": 16, "attention_size": 16},
    "tfidf": {"ngram_buckets": 4096},
}


BUILDERS: list[subprocess.Popen] = []  # held, so the builder is not garbage-collected while it runs


def pytest_collection_finish(session: pytest.Session) -> None:
    """Label Studio's cached venv and data folder, built in the background while the tests before its test run
    (its test waits for them under a file lock; see tests/label_studio.py)."""
    if any("label_studio_round_trip" in item.nodeid for item in session.items):
        from tests.label_studio import CACHE, prepared

        if not prepared():
            CACHE.mkdir(parents=True, exist_ok=True)
            with (CACHE / "label-studio-prepare.log").open("ab") as log:
                BUILDERS.append(subprocess.Popen([sys.executable, "-m", "tests.label_studio"], cwd=REPO, stdout=log,
                                                 stderr=subprocess.STDOUT, start_new_session=True))


def tiny_params(source: str | Path, **sections: dict) -> dict:
    params = {
        "data": {"source": str(source)},
        "preprocess": {"vocab_size": 200, "min_frequency": 1, "max_len": 32, "val_ratio": 0.2, "test_ratio": 0.2,
                       "tokenizer_corpora": []},
        "pretrain": {"enabled": True, "corpora": [], "max_tokens": 5000, "streams": 4, "bptt": 8, "embedding_dim": 16,
                     "hidden_size": 16, "samples": 1, "accelerator": "cpu"},
        "train": TINY_TRAIN,
        "select": {"min_val_f1": 0.3},
    }
    for key, value in sections.items():
        params[key] = {**params.get(key, {}), **value}
    return params


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.csv"
    make_texts(60).to_csv(path, index=False)
    return path


@pytest.fixture
def tiny_workdir(tmp_path: Path, tiny_csv: Path) -> Path:
    """A folder with params.yaml pointing at the tiny corpus, ready for the stage entry points."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(tiny_csv)), encoding="utf-8")
    return tmp_path


@pytest.fixture(scope="session")
def processed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/processed made by the real cleaning, split and tokenizer code from a tiny corpus."""
    from training.cleaning import clean, stratified_split
    from training.token_store import build_store
    from training.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("processed")
    frame = make_texts(80, ("pos", "neg", "mid"))
    splits = stratified_split(clean(frame).frame, 0.2, 0.2, seed=1)
    for name, split in splits.items():
        split.to_parquet(out / f"{name}.parquet", index=False)
    train_tokenizer(splits["train"]["text"], 300, 1, 32).save(str(out / "tokenizer.json"))
    build_store(out, out / "tokenizer.json", sorted(splits["train"]["label"].unique()))
    return out


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny but real serving bundle, shared by the serving and batch-scoring tests."""
    from tests.serving.tiny_bundle import make_tiny_bundle

    path = tmp_path_factory.mktemp("bundle")
    make_tiny_bundle(path)
    return path


@pytest.fixture(scope="session")
def predictor(bundle: Path):
    from serving.predictor import OnnxPredictor

    return OnnxPredictor(bundle)


@pytest.fixture(scope="session")
def pretrained_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny git + DVC project after `dvc repro pretrain` (ingest, preprocess, the language model), made once
    for the session: the tests that train or evaluate one model start from a copy instead of rerunning it."""
    from tests.pipelines.project import make_project, sh

    project = make_project(tmp_path_factory.mktemp("pretrained"))
    sh(project, "dvc", "repro", "pretrain")
    sh(project, "git", "add", "-A")
    sh(project, "git", "commit", "-qm", "pretrained")
    return project


@pytest.fixture
def project_copy(pretrained_project: Path, tmp_path: Path) -> Path:
    """A private copy of `pretrained_project`: git history, DVC cache, outputs and MLflow store."""
    import shutil

    return Path(shutil.copytree(pretrained_project, tmp_path / "project", symlinks=True))

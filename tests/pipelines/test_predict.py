"""pipelines.predict: round trips in every format, chunking, bad texts, refusals and atomic output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.predict import predict_file
from tests.conftest import REPO
from tests.serving.tiny_bundle import TINY_LABELS

SCORES = [f"score_{label}" for label in TINY_LABELS]
ADDED = ["label", *SCORES]
TEXTS = [
    "这本书很好看，推荐", "质量太差了，不会再买", "还行吧，一般般", "物流很快，包装完好", "The book is great",
    "terrible quality, broke after a day", "it is ok", "服务态度非常好 very good service", "屏幕有点暗", "多行\n文本",
]
SUFFIX = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl", "parquet": ".parquet"}


def cli(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pipelines.predict", *map(str, args), "--no-progress"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)


def sample() -> pd.DataFrame:
    """Columns before and after the text; values that NA parsing or number parsing would change."""
    n = len(TEXTS)
    return pd.DataFrame({"id": range(n), "text": TEXTS, "note": ["007", "NA", "", "x,y", "1e3"] * (n // 5)})


def write(frame: pd.DataFrame, path: Path) -> Path:
    fmt = path.suffix[1:]
    if fmt in ("csv", "tsv"):
        frame.to_csv(path, sep="\t" if fmt == "tsv" else ",", index=False)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in frame.to_dict("records")),
                        encoding="utf-8")
    else:
        frame.to_parquet(path, index=False)
    return path


def read(path: Path) -> pd.DataFrame:
    """Read as the user would; text formats as raw strings so "unchanged" means byte-for-byte values."""
    fmt = path.suffix[1:]
    if fmt in ("csv", "tsv"):
        frame = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False)
        for name in SCORES:
            if name in frame:
                frame[name] = pd.to_numeric(frame[name])
        return frame
    if fmt == "jsonl":
        return pd.DataFrame([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()])
    return pd.read_parquet(path)


def assert_scored(out: pd.DataFrame, texts: list[str], predictor) -> None:
    expected = predictor.probabilities(texts)
    np.testing.assert_allclose(out[SCORES].to_numpy(dtype=np.float64), expected, atol=1e-6, rtol=0)
    assert out["label"].tolist() == [TINY_LABELS[k] for k in expected.argmax(axis=1)]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_each_format_keeps_every_column_and_adds_label_and_scores(fmt, bundle, predictor, tmp_path):
    src = write(sample(), tmp_path / f"in{SUFFIX[fmt]}")
    dst = tmp_path / f"out{SUFFIX[fmt]}"
    done = cli(src, dst, "--model", bundle)
    assert done.returncode == 0, done.stderr
    assert "10 rows scored, 0 passed through (no errors)" in done.stderr and str(dst) in done.stderr
    original, out = read(src), read(dst)
    assert list(out.columns) == [*original.columns, *ADDED]
    pd.testing.assert_frame_equal(out[list(original.columns)], original)
    assert_scored(out, TEXTS, predictor)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, dst.name])  # no partial file left


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_many_small_chunks_give_the_same_file_as_one_chunk(fmt, predictor, tmp_path):
    src = write(sample(), tmp_path / f"in{SUFFIX[fmt]}")
    one, many = tmp_path / f"one{SUFFIX[fmt]}", tmp_path / f"many{SUFFIX[fmt]}"
    assert predict_file(predictor, src, one, chunk_size=1000, progress=False)["rows"] == 10
    counts = predict_file(predictor, src, many, chunk_size=3, progress=False)
    assert counts["rows"] == counts["scored"] == 10 and counts["passed_through"] == 0
    pd.testing.assert_frame_equal(read(many), read(one))
    if fmt != "parquet":  # row groups differ by design; the text formats must match byte for byte
        assert many.read_bytes() == one.read_bytes()


def test_missing_and_non_string_texts_pass_through_and_empty_texts_are_scored(bundle, predictor, tmp_path):
    records = [{"text": "还行吧"}, {"text": None}, {"text": 42}, {"id": 3}, {"text": ""}, {"text": "   "},
               {"text": ["a"]}, {"text": "质量太差了"}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    done = cli(src, tmp_path / "out.jsonl", "--model", bundle)
    assert done.returncode == 0, done.stderr
    assert "4 rows had no text to score" in done.stderr and "data rows 2, 3, 4, 7" in done.stderr
    assert "4 rows scored, 4 passed through (errors: 4 missing or non-string texts" in done.stderr
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    for record, row in zip(records, out, strict=True):
        assert row == {**row, **record}  # input keys and values kept as they were
    bad = [out[i] for i in (1, 2, 3, 6)]
    assert all(row["label"] == "" and all(row[s] is None for s in SCORES) for row in bad)
    good = [i for i in range(len(out)) if i not in (1, 2, 3, 6)]
    # "" and "   " are scored as POST /classify scores them (a lone [UNK]), not passed through.
    assert_scored(pd.DataFrame([out[i] for i in good]), [records[i]["text"] for i in good], predictor)


def test_nulls_in_parquet_pass_through_as_null_scores(predictor, tmp_path):
    src = tmp_path / "in.parquet"
    pd.DataFrame({"text": ["还行吧", None, "质量太差了"], "n": [1, 2, 3]}).to_parquet(src)
    counts = predict_file(predictor, src, tmp_path / "out.parquet", progress=False)
    assert (counts["scored"], counts["passed_through"], counts["bad_rows"]) == (2, 1, [2])
    out = read(tmp_path / "out.parquet")
    assert out["label"][1] == "" and out[SCORES].iloc[1].isna().all()
    assert_scored(out.iloc[[0, 2]], ["还行吧", "质量太差了"], predictor)


def test_header_only_input_gives_header_only_output(predictor, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,text\n", encoding="utf-8")
    assert predict_file(predictor, src, tmp_path / "out.csv", progress=False)["rows"] == 0
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == "id,text," + ",".join(ADDED) + "\n"


def test_existing_output_is_refused_unless_overwrite(bundle, predictor, tmp_path):
    src = write(sample(), tmp_path / "in.csv")
    dst = tmp_path / "out.csv"
    dst.write_text("keep me\n", encoding="utf-8")
    refused = cli(src, dst, "--model", bundle)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [f"error: output {dst} already exists; pass --overwrite to "
                                                   "replace it"]
    assert dst.read_text(encoding="utf-8") == "keep me\n"
    done = cli(src, dst, "--model", bundle, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert_scored(read(dst), TEXTS, predictor)


@pytest.mark.parametrize(("case", "expected"), [
    ("missing input", "error: input {tmp}/nope.csv not found"),
    ("unknown suffix", "error: input {tmp}/in.txt: unknown format '.txt'"),
    ("other output format", "error: output {tmp}/out.parquet is parquet, but the input {tmp}/in.csv is csv"),
    ("missing column", "error: input {tmp}/in.csv has no column 'body'; its columns are ['id', 'text', 'note']"),
    ("column clash", "error: input {tmp}/clash.csv already has column(s) ['label']"),
    ("missing bundle", "error: model bundle {tmp}/no-bundle not found: run `dvc repro`"),
    ("broken jsonl", "error: cannot read {tmp}/broken.jsonl: line 2 is not valid JSON"),
])
def test_user_errors_are_one_line_naming_the_file(case, expected, bundle, tmp_path):
    write(sample(), tmp_path / "in.csv")
    (tmp_path / "in.txt").write_text("text\nhello\n", encoding="utf-8")
    write(sample().assign(label="x"), tmp_path / "clash.csv")
    (tmp_path / "broken.jsonl").write_text('{"text": "ok"}\n{"text": oops}\n', encoding="utf-8")
    args = {
        "missing input": ["nope.csv", "out.csv"], "unknown suffix": ["in.txt", "out.txt"],
        "other output format": ["in.csv", "out.parquet"], "missing column": ["in.csv", "out.csv", "--text-column",
                                                                              "body"],
        "column clash": ["clash.csv", "out.csv"], "missing bundle": ["in.csv", "out.csv", "--model", "no-bundle"],
        "broken jsonl": ["broken.jsonl", "out.jsonl"],
    }[case]
    args = [tmp_path / a if i < 2 or a == "no-bundle" else a for i, a in enumerate(args)]
    done = cli(*args, *([] if case == "missing bundle" else ["--model", bundle]))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected.format(tmp=tmp_path)), done.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("out", ".out"))) == []


class FailsOnSecondChunk:
    """The real predictor until its second call, which checks the output is not yet visible, then fails."""

    def __init__(self, predictor, output: Path, error: type[BaseException]):
        self.predictor, self.output, self.error, self.calls = predictor, output, error, 0
        self.labels = predictor.labels

    def probabilities(self, texts):
        self.calls += 1
        if self.calls == 2:
            # Mid-job only the partial file exists: a SIGKILL here leaves nothing under the output's name.
            assert [p.name.startswith(f".{self.output.name}.partial-") for p in self.output.parent.glob(".*")] == [True]
            raise self.error("boom")
        return self.predictor.probabilities(texts)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_job_failing_midway_leaves_no_output_and_no_partial_file(fmt, error, predictor, tmp_path):
    src = write(sample(), tmp_path / f"in{SUFFIX[fmt]}")
    dst = tmp_path / f"out{SUFFIX[fmt]}"
    with pytest.raises(error, match="boom"):
        predict_file(FailsOnSecondChunk(predictor, dst, error), src, dst, chunk_size=3, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == [src.name]


def test_a_failed_overwrite_keeps_the_old_output(predictor, tmp_path):
    src = write(sample(), tmp_path / "in.csv")
    dst = tmp_path / "out.csv"
    dst.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError):
        predict_file(FailsOnSecondChunk(predictor, dst, RuntimeError), src, dst, chunk_size=3, overwrite=True,
                     progress=False)
    assert dst.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_sigterm_removes_the_partial_file_and_sigkill_leaves_nothing_under_the_output_name(bundle, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"text {i} 很好"}) + "\n" for i in range(200_000)), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        dst = tmp_path / f"out-{sig.name}.jsonl"
        job = subprocess.Popen([sys.executable, "-m", "pipelines.predict", str(src), str(dst), "--model", str(bundle),
                                "--chunk-size", "50", "--no-progress"], cwd=REPO, env=env,
                               stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(f".{dst.name}.partial-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        job.send_signal(sig)
        _, stderr = job.communicate(timeout=60)
        assert not dst.exists()
        partials = list(tmp_path.glob(f".{dst.name}.partial-*"))
        if sig == signal.SIGTERM:
            assert job.returncode == 130 and partials == [], stderr
            assert stderr.strip().splitlines()[-1] == f"interrupted: {dst} not written"
        else:
            assert job.returncode == -signal.SIGKILL and len(partials) == 1  # a hidden leftover, never OUTPUT


@pytest.fixture(scope="session")
def registry(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.registry import make_registry

    return make_registry(tmp_path_factory.mktemp("registry"), bundle)


def test_the_registry_champion_scores_as_the_bundle(registry: str, predictor, tmp_path: Path):
    """--model models:/textclf@champion loads the pyfunc's bundle: the same scores as the bundle itself."""
    source = write(sample(), tmp_path / "in.jsonl")
    done = subprocess.run([sys.executable, "-m", "pipelines.predict", str(source), str(tmp_path / "out.jsonl"),
                           "--model", "models:/textclf@champion", "--no-progress"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO),
                                                       "MLFLOW_TRACKING_URI": registry})
    assert done.returncode == 0, done.stderr
    out = pd.read_json(tmp_path / "out.jsonl", lines=True)
    assert np.abs(out[SCORES].to_numpy() - predictor.probabilities(TEXTS)).max() <= 1e-6


def test_a_registry_without_champion_is_named(registry: str, tmp_path: Path):
    source = write(sample(), tmp_path / "in.csv")
    done = subprocess.run([sys.executable, "-m", "pipelines.predict", str(source), str(tmp_path / "out.csv"),
                           "--model", "models:/reviews@champion", "--no-progress"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO),
                                                       "MLFLOW_TRACKING_URI": registry})
    assert done.returncode == 2 and "'reviews'" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.csv").exists()


def test_pyfunc_passes_bad_rows_through_as_nulls(predictor):
    """The MLflow Model (Spark, `mlflow models serve`) treats a missing or non-string text as batch scoring
    does: a null label and null scores for that row, the others scored as usual."""
    from serving.pyfunc import score_frame

    frame = score_frame(predictor, [TEXTS[0], None, 3, TEXTS[1]], pd.RangeIndex(4))
    assert frame["label"].isna().tolist() == [False, True, True, False]
    assert frame[SCORES].iloc[[1, 2]].isna().all().all()
    assert np.abs(frame[SCORES].iloc[[0, 3]].to_numpy() - predictor.probabilities([TEXTS[0], TEXTS[1]])).max() <= 1e-6

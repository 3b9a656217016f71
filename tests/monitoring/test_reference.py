"""The monitor's reference in bounded memory: seeded samples of the splits, label shares over the whole split."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from monitoring.reference import label_counts, load_reference, sample_rows
from serving.predictor import OnnxPredictor
from tests.conftest import make_texts
from tests.serving.tiny_bundle import make_tiny_bundle


def write_split(path, frame, row_group: int = 37) -> None:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group)


def test_sample_rows_is_seeded_uniform_in_file_order_and_whole_when_small(tmp_path) -> None:
    frame = make_texts(250, classes=("pos", "neg", "mid"), seed=1)  # 750 rows in row groups of 37: batches cut anywhere
    path = tmp_path / "train.parquet"
    write_split(path, frame)
    order = {t: i for i, t in enumerate(frame["text"])}
    sample = sample_rows(path, 100, seed=3, columns=("text", "label")).to_pandas()
    positions = [order[t] for t in sample["text"]]
    assert len(sample) == 100 and len(set(positions)) == 100 and positions == sorted(positions)
    assert (frame.set_index("text").loc[sample["text"], "label"].to_numpy() == sample["label"].to_numpy()).all()
    assert sample_rows(path, 100, seed=3)["text"].to_pylist() == sample["text"].tolist()  # seeded: the same again
    assert sample_rows(path, 100, seed=4)["text"].to_pylist() != sample["text"].tolist()
    # drawn from the whole file, not its head: the positions spread over it
    assert min(positions) < 100 and max(positions) > 650
    assert sample_rows(path, 750)["text"].to_pylist() == frame["text"].tolist()  # no larger than n: whole, in order
    assert label_counts(path) == frame["label"].value_counts().to_dict() == {"pos": 250, "neg": 250, "mid": 250}


def test_a_sampled_reference_keeps_the_exact_label_shares_and_says_what_it_rests_on(tmp_path) -> None:
    bundle, data = tmp_path / "bundle", tmp_path / "data"
    make_tiny_bundle(bundle)
    data.mkdir()
    train, test = make_texts(300, seed=2), make_texts(120, seed=5)
    train.loc[:99, "label"] = "neg"  # uneven shares: 400 neg, 200 pos
    write_split(data / "train.parquet", train)
    write_split(data / "test.parquet", test)
    predictor = OnnxPredictor(bundle)
    whole = load_reference(data, predictor)
    sampled = load_reference(data, predictor, train_rows=150, test_rows=50)
    assert whole.texts == train["text"].tolist() and len(whole.confidence) == 240  # small splits: read whole
    assert sampled.labels == whole.labels == {"neg": 400, "pos": 200}  # counted over the whole split
    assert len(sampled.texts) == len(sampled.n_chars) == 150 and set(sampled.texts) <= set(whole.texts)
    assert len(sampled.confidence) == len(sampled.n_tokens) == 50
    assert (sampled.train_rows, sampled.test_rows) == (whole.train_rows, whole.test_rows) == (600, 240)
    # the sampled lengths estimate the whole split's
    assert abs(np.mean(sampled.n_chars) - np.mean(whole.n_chars)) < 0.1 * np.std(whole.n_chars) + 1

"""The streamed corpus path: shards, batch boundaries, the hash split's stability, no leakage, the token store."""

import pickle

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.conftest import make_texts
from training.cleaning import SplitError, clean, stratified_split
from training.corpus import CorpusError, iter_corpus
from training.prepare import prepare_splits
from training.token_store import StackedSplit, TokenSplit, build_store, open_store, write_split
from training.tokenizer import train_tokenizer


def _corpus(tmp_path, frame: pd.DataFrame, name: str = "corpus.parquet"):
    path = tmp_path / name
    frame.to_parquet(path, index=False)
    return path


def _splits(out) -> dict[str, pd.DataFrame]:
    return {s: pd.read_parquet(out / f"{s}.parquet") for s in ("train", "val", "test")}


def _messy(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Distinct texts plus full-width copies, conflicting labels, empty texts and missing labels."""
    frame = make_texts(n, ("pos", "neg", "mid"), seed)
    extra = pd.DataFrame({"text": [frame.text[0].replace("1", "１"), frame.text[1], frame.text[2], "  ", "x"],
                          "label": [frame.label[0], "mid" if frame.label[1] != "mid" else "pos", frame.label[2],
                                    "pos", None]})
    return pd.concat([frame, extra], ignore_index=True)


def test_streamed_stratified_split_equals_the_in_memory_one(tmp_path):
    raw = _messy()
    prepared = prepare_splits(_corpus(tmp_path, raw), tmp_path / "out", "stratified", 0.2, 0.2, seed=3)
    cleaned = clean(raw)
    assert prepared.dropped == cleaned.dropped and prepared.kept == len(cleaned.frame)
    expected = stratified_split(cleaned.frame, 0.2, 0.2, seed=3)
    for name, frame in _splits(tmp_path / "out").items():
        assert frame.equals(expected[name]), name
    assert prepared.split["method"] == "stratified"


@pytest.mark.parametrize("batch_rows", [1, 7, 10_000])
def test_batch_boundaries_change_nothing(tmp_path, monkeypatch, batch_rows):
    import training.prepare as prepare

    raw = _messy()
    reference = prepare_splits(_corpus(tmp_path, raw), tmp_path / "ref", "hash", 0.2, 0.2, seed=3)
    monkeypatch.setattr(prepare, "BATCH_ROWS", batch_rows)
    chunked = prepare_splits(_corpus(tmp_path, raw), tmp_path / "chunked", "hash", 0.2, 0.2, seed=3)
    assert chunked == reference
    for name, frame in _splits(tmp_path / "chunked").items():
        assert frame.equals(_splits(tmp_path / "ref")[name])


def test_hash_split_is_stable_when_the_corpus_is_reordered_or_grows(tmp_path):
    small = make_texts(80, ("pos", "neg"), seed=1)
    grown = pd.concat([small, make_texts(80, ("pos", "neg"), seed=2)], ignore_index=True).drop_duplicates("text")
    shuffled = grown.sample(frac=1.0, random_state=5)
    sides = {}
    for name, frame in {"small": small, "grown": grown, "shuffled": shuffled}.items():
        prepare_splits(_corpus(tmp_path, frame, f"{name}.parquet"), tmp_path / name, "hash", 0.2, 0.2, seed=3)
        sides[name] = {t: s for s, f in _splits(tmp_path / name).items() for t in f.text}
    assert all(sides["grown"][t] == side for t, side in sides["small"].items())  # no old text moved
    assert sides["shuffled"] == sides["grown"]
    # the split follows the seed, and is a fair cut
    prepare_splits(_corpus(tmp_path, grown, "g.parquet"), tmp_path / "other", "hash", 0.2, 0.2, seed=4)
    other = {t: s for s, f in _splits(tmp_path / "other").items() for t in f.text}
    assert other != sides["grown"]
    share = sum(s == "test" for s in sides["grown"].values()) / len(sides["grown"])
    assert 0.1 < share < 0.3


def test_hash_split_has_no_leakage_even_with_copies(tmp_path):
    frame = make_texts(60, ("pos", "neg"))
    copies = frame.assign(text=frame.text.str.replace("1", "１") + "  ")  # the same after normalising
    prepared = prepare_splits(_corpus(tmp_path, pd.concat([frame, copies, frame])), tmp_path / "out", "hash",
                              0.2, 0.2, seed=0)
    splits = _splits(tmp_path / "out")
    texts = [set(f.text) for f in splits.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert sum(map(len, texts)) == 120 and prepared.dropped["duplicate"] == 240


def test_hash_split_names_a_class_it_left_out(tmp_path):
    frame = pd.concat([make_texts(60, ("pos",)), pd.DataFrame({"text": ["rare one", "rare two"],
                                                                "label": ["odd", "odd"]})])
    with pytest.raises(SplitError, match=r"class\(es\) odd without a .* preprocess.split: stratified"):
        prepare_splits(_corpus(tmp_path, frame), tmp_path / "out", "hash", 0.1, 0.1, seed=0)


def test_auto_split_switches_to_hash_on_big_corpora(tmp_path, monkeypatch):
    import training.prepare as prepare

    monkeypatch.setattr(prepare, "AUTO_HASH_ROWS", 100)
    path = _corpus(tmp_path, make_texts(60, ("pos", "neg")))
    assert prepare_splits(path, tmp_path / "a", "auto", 0.2, 0.2, 0).split["method"] == "hash"
    monkeypatch.setattr(prepare, "AUTO_HASH_ROWS", 1000)
    assert prepare_splits(path, tmp_path / "b", "auto", 0.2, 0.2, 0).split["method"] == "stratified"


def test_a_folder_or_glob_of_shards_reads_as_one_corpus(tmp_path):
    frame = make_texts(20, ("pos", "neg"))
    shards = tmp_path / "shards"
    (shards / "more").mkdir(parents=True)
    frame.iloc[:10].to_parquet(shards / "a.parquet", index=False)
    frame.iloc[10:25].to_csv(shards / "b.csv", index=False)
    frame.iloc[25:].to_json(shards / "more" / "c.jsonl", orient="records", lines=True, force_ascii=False)
    (shards / "notes.txt").write_text("not a shard")
    for source in (str(shards), str(shards / "**" / "*.[cjp]*")):
        batches = list(iter_corpus(source, batch_rows=4))
        assert [t for b in batches for t in b.texts] == frame.text.tolist()
        assert max(len(b.texts) for b in batches) <= 4
    with pytest.raises(CorpusError, match="matches no file"):
        list(iter_corpus(str(tmp_path / "none-*.csv")))


def test_bad_rows_are_counted_across_batches(tmp_path):
    csv = tmp_path / "data.csv"
    csv.write_bytes(b"text,label\n" + b"ok,pos\n" * 5 + b"bad \xff,neg\n" + b"a,b,c\n" + b"fine,neg\n" * 5)
    batches = list(iter_corpus(str(csv), batch_rows=3))
    assert sum(len(b.texts) for b in batches) == 10 and sum(b.unreadable for b in batches) == 2


def test_token_store_reads_lazily_and_reopens_when_pickled(tmp_path):
    ids = [[5, 6, 7], [8], [9, 10]]
    write_split(tmp_path, "train", [(ids[:2], [0, 1]), (ids[2:], [1])])
    split = TokenSplit(tmp_path, "train")
    assert isinstance(split.ids.flat, np.memmap)
    assert split.ids[1] == [8] and split.ids[-1] == [9, 10] and split.ids[0:2] == ids[:2]
    assert split.lengths.tolist() == [3, 1, 2] and split[2] == ([9, 10], 1)
    state = pickle.dumps(split)
    assert len(state) < 200  # paths, not the ids
    assert pickle.loads(state)[0] == ([5, 6, 7], 0)
    both = StackedSplit([split, split])
    assert len(both) == 6 and both[4] == ([8], 1) and both.ids[3:5] == ids[:2]


def test_token_store_is_checked_against_the_tokenizer(tmp_path, processed_dir):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(processed_dir, data)
    meta, splits = open_store(data, data / "tokenizer.json")
    assert sum(meta.splits.values()) == sum(pq.ParquetFile(data / f"{s}.parquet").metadata.num_rows for s in splits)
    train_tokenizer(["other words"] * 3, 50, 1, 8).save(str(data / "tokenizer.json"))
    with pytest.raises(FileNotFoundError, match=r"another tokenizer.*re-run preprocess"):
        open_store(data, data / "tokenizer.json")
    build_store(data, data / "tokenizer.json", meta.labels)
    open_store(data, data / "tokenizer.json")

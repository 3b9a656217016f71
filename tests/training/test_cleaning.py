import pandas as pd
import pytest

from tests.conftest import make_texts
from training.cleaning import SplitError, assert_disjoint, clean, normalise, stratified_split


def test_normalise_nfkc_and_whitespace():
    assert normalise("  ＡＢＣ１２３\u3000好　书\t\n ") == "ABC123 好 书"
    assert normalise(None) == ""


def test_drop_counts_account_for_every_row():
    raw = pd.DataFrame({
        "text": ["好书", "好书 ", "ＢＡＤ", "BAD", "  ", None, "矛盾", "矛盾", "ok", "fine"],
        "label": ["pos", "pos", "neg", "neg", "pos", "neg", "pos", "neg", None, " "],
    })
    result = clean(raw, unreadable=3)
    assert result.dropped == {
        "unreadable": 3, "missing_label": 2, "empty_text": 2, "conflicting_label": 2, "duplicate": 2,
    }
    assert result.frame.to_dict("list") == {"text": ["好书", "BAD"], "label": ["pos", "neg"]}
    assert len(result.frame) + sum(result.dropped.values()) == len(raw) + 3


def test_split_is_stratified_seeded_and_disjoint():
    frame = clean(make_texts(50, ("pos", "neg", "mid"))).frame
    first = stratified_split(frame, 0.2, 0.2, seed=7)
    again = stratified_split(frame, 0.2, 0.2, seed=7)
    other = stratified_split(frame, 0.2, 0.2, seed=8)
    assert {k: len(v) for k, v in first.items()} == {"train": 90, "val": 30, "test": 30}
    assert all(first[k].equals(again[k]) for k in first)
    assert not first["test"].equals(other["test"])
    for split in first.values():
        assert split["label"].value_counts().tolist() == [len(split) // 3] * 3
    texts = [set(s["text"]) for s in first.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])


def test_overlap_is_detected_not_assumed():
    a = pd.DataFrame({"text": ["x", "y"], "label": ["a", "b"]})
    b = pd.DataFrame({"text": ["y"], "label": ["b"]})
    with pytest.raises(SplitError, match=r"1 text.*train and test"):
        assert_disjoint({"train": a, "test": b})


def test_too_few_rows_and_nothing_left():
    frame = pd.DataFrame({"text": ["a", "b", "c", "d", "e"], "label": ["x", "x", "x", "y", "y"]})
    with pytest.raises(SplitError, match="class 'y' has 2 row"):
        stratified_split(frame, 0.1, 0.1, 0)
    with pytest.raises(SplitError, match="nothing is left"):
        stratified_split(frame.iloc[:0], 0.1, 0.1, 0)

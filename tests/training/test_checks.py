"""Behavioural checklists: parsing, refusals with a clear message, and scoring each kind of case."""

import numpy as np
import pytest
import yaml

from training.checks import ChecklistError, below_floors, load_checklist, run_checks

LABELS = ["neg", "pos"]
CHECKLIST = {
    "dataset": "reviews",
    "minimum_functionality": [
        {"id": "mft-1", "text": "好 好", "label": "pos"},
        {"id": "mft-2", "text": "差 差", "label": "neg"},
        {"id": "mft-3", "text": "差 好", "label": "pos"},  # the keyword model below gets this wrong
    ],
    "invariance": [
        {"id": "inv-1", "perturbation": "punctuation", "text": "好", "variant": "好!"},
        {"id": "inv-2", "perturbation": "neutral_clause", "text": "好", "variant": "好 差"},  # flips: fails
    ],
    "directional": [
        {"id": "dir-1", "perturbation": "add_negative", "text": "好", "variant": "好 差", "toward": "neg"},
        {"id": "dir-2", "perturbation": "add_positive", "text": "差", "variant": "差 差", "toward": "pos"},  # fails
    ],
}


def keyword_model(texts):
    """P(pos) grows with 好 and falls with 差: a stand-in for a model, known answers for each case."""
    score = np.array([t.count("好") - 1.5 * t.count("差") for t in texts], dtype=float)
    pos = 1 / (1 + np.exp(-score))
    return np.stack([1 - pos, pos], axis=1)


def write(tmp_path, data):
    path = tmp_path / "reviews.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_each_kind_of_case_is_scored(tmp_path):
    checklist = load_checklist(write(tmp_path, CHECKLIST), "reviews", LABELS)
    assert len(checklist) == 7
    results = run_checks(checklist, keyword_model, LABELS)
    assert results["pass_rate"] == {"minimum_functionality": round(2 / 3, 4), "invariance": 0.5, "directional": 0.5}
    assert sorted(f["id"] for f in results["failed"]) == ["dir-2", "inv-2", "mft-3"]
    mft = next(f for f in results["failed"] if f["id"] == "mft-3")
    assert mft["model_said"]["label"] == "neg" and mft["label"] == "pos"
    assert below_floors(results["pass_rate"], {"minimum_functionality": 0.6, "invariance": 0.9,
                                               "directional": 0.5}) == ["invariance 50.0% < 90%"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["minimum_functionality"].append({"id": "mft-9", "text": "x", "label": "meh"}),
     "minimum_functionality entry 4 (mft-9): unknown label 'meh'"),
    (lambda d: d["invariance"].append({"id": "inv-9", "text": "x"}),
     "invariance entry 3 (inv-9): variant: Field required"),
    (lambda d: d["directional"].append({**d["directional"][0], "id": "dir-1"}),
     "directional entry 3 (dir-1): duplicate id"),
    (lambda d: d["invariance"].append({**d["invariance"][0], "id": "inv-7"}),
     "invariance case inv-7 repeats case inv-1"),
    (lambda d: d["invariance"].append({"id": "inv-8", "perturbation": "p", "text": "a", "variant": "a"}),
     "variant equals text"),
    (lambda d: d.update(dataset="other"), "is for dataset 'other', but this pipeline trains on 'reviews'"),
    (lambda d: d.update(invariant=[]), "unknown section(s) ['invariant']"),
])
def test_bad_checklists_are_refused_naming_file_and_entry(tmp_path, change, message):
    data = yaml.safe_load(yaml.safe_dump(CHECKLIST))
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(ChecklistError) as err:
        load_checklist(path, "reviews", LABELS)
    assert message in str(err.value) and str(path) in str(err.value)


def test_builtin_checklist_is_valid_and_large_enough():
    from tests.conftest import REPO

    checklist = load_checklist(REPO / "checks/snownlp-sentiment.yaml", "snownlp-sentiment", LABELS)
    assert len(checklist) >= 150 and all(checklist.cases.values())
    texts = {c.text for c in checklist.cases["minimum_functionality"]}
    assert {"这本书很好看", "宝宝很喜欢这本书", "质量太差了"} <= texts

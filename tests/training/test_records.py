"""The stage records keep the files' keys and order, leave unset optional keys out, and say which stage to rerun."""

import json
from types import SimpleNamespace

import pytest

from training.records import BestRecord, CandidateRecord, Champion, CheckRecord, Decision, Parity, Rollback

SCORES = {"accuracy": 0.9, "macro_f1": 0.89}
CALIBRATION = {"method": "temperature", "temperature": 0.8, "bins": 15, "fitted_on": "val", "val_ece": 0.02,
               "val_ece_uncalibrated": 0.03, "test_ece": 0.02, "test_ece_uncalibrated": 0.04}
NO_CHECKLIST = {"checklist": None, "passed": True, "below_floor": [], "pass_rate": {}, "failed": []}


def check_record(**extra) -> CheckRecord:
    return CheckRecord(model="rcnn", mlflow_run_id="run", val=SCORES, test=SCORES, calibration=CALIBRATION,
                       cost_ms_per_text=0.7, **NO_CHECKLIST, **extra)


def test_a_check_record_leaves_unset_optional_keys_out_and_reads_back(tmp_path):
    path = tmp_path / "checks" / "rcnn.json"
    check_record().write(path)
    written = json.loads(path.read_text(encoding="utf-8"))
    assert list(written) == ["model", "mlflow_run_id", "val", "test", "calibration", "cost_ms_per_text", "checklist",
                             "passed", "below_floor", "pass_rate", "failed"]
    assert written["checklist"] is None and CheckRecord.read(path) == check_record()
    ensemble = check_record(members=["rcnn", "tfidf"], members_chosen_because="best", subsets=[],
                            member_cost_ms_per_text={"rcnn": 0.7}).model_dump(mode="json")
    assert list(ensemble)[:3] == ["model", "mlflow_run_id", "members"] and "counts" not in ensemble


def test_best_is_the_candidate_then_exports_decision_and_a_rollback(tmp_path):
    champion = Champion.of(SimpleNamespace(version=2, tags={"model": "rcnn"}, run_id="run"))
    pick = CandidateRecord(model="rcnn", val=SCORES, test=SCORES, calibration=CALIBRATION, chosen_because="best",
                           run_id="run", gate_passed=True, reason="passed the gate", data_hash="h",
                           registered_model="textclf", champion=champion,
                           candidates={"rcnn": check_record().standing()})
    decision = Decision(parity=Parity(passed=False, error="differ"), reason="ONNX export failed parity: differ")
    best = BestRecord(**{**dict(pick), **dict(decision)})
    best.write(tmp_path / "best.json")
    written = json.loads((tmp_path / "best.json").read_text(encoding="utf-8"))
    assert list(written) == [*pick.model_dump(), "parity", "registered_version", "promoted"]
    assert written["reason"] == decision.reason and written["parity"] == {"passed": False, "error": "differ"}
    assert written["champion"] == {"version": "2", "model": "rcnn", "run_id": "run"}
    rollback = Rollback(from_="3", to="2", at="now", reason="rolled back from v3")
    best.model_copy(update={"rollback": rollback}).write(tmp_path / "best.json")
    assert BestRecord.read(tmp_path / "best.json").rollback == rollback
    assert json.loads((tmp_path / "best.json").read_text())["rollback"]["from"] == "3"


def test_a_missing_or_foreign_file_names_the_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"candidate\.json not found: run `dvc repro select` first"):
        CandidateRecord.read(tmp_path / "candidate.json")
    (tmp_path / "best.json").write_text(json.dumps({"promoted": "maybe"}))
    foreign = r"best\.json is not a BestRecord \('model': Field required\).*`dvc repro -f export`"
    with pytest.raises(ValueError, match=foreign):
        BestRecord.read(tmp_path / "best.json")

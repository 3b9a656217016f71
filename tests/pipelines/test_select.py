from types import SimpleNamespace

import pytest

from pipelines.select import choose, gate
from training.records import CheckRecord


def _champion(val_f1: float, data_hash: str):
    return SimpleNamespace(version="3", tags={"val_macro_f1": str(val_f1), "data_hash": data_hash, "model": "rcnn"})


def test_gate_checks_the_floor_then_the_champion_on_the_same_data():
    assert gate(0.80, 0.5, None, "h1") == (True, "passed the gate")
    assert gate(0.40, 0.5, None, "h1")[0] is False
    promoted, reason = gate(0.80, 0.5, _champion(0.85, "h1"), "h1")
    assert not promoted and "below champion v3 (rcnn, 0.8500) on the same data" in reason
    assert gate(0.85, 0.5, _champion(0.85, "h1"), "h1")[0] is True  # a tie may replace it
    assert gate(0.80, 0.5, _champion(0.95, "h0"), "h1")[0] is True  # other data: scores don't compare


def _record(f1: float, passed: bool = True, cost: float = 1.0, below: tuple[str, ...] = (),
            failed: tuple[dict, ...] = ()) -> CheckRecord:
    """A candidate's record, as evaluate writes it, with what select looks at set."""
    scores = {"accuracy": f1, "macro_f1": f1}
    calibration = {"method": "temperature", "temperature": 1.0, "bins": 15, "fitted_on": "val", "val_ece": 0.1,
                   "val_ece_uncalibrated": 0.1, "test_ece": 0.1, "test_ece_uncalibrated": 0.1}
    return CheckRecord(model="m", mlflow_run_id="r", val=scores, test=scores, calibration=calibration,
                       cost_ms_per_text=cost, checklist="checks/x.yaml", passed=passed, below_floor=list(below),
                       pass_rate={"invariance": 0.5 if below else 1.0}, failed=list(failed))


def test_choose_passes_over_candidates_below_the_behavioural_floor():
    val = {"rcnn": 0.9, "bilstm": 0.8, "ensemble": 0.85}
    bad = {"passed": False, "below": ("invariance 50.0% < 90%",), "failed": ({"id": "inv-3", "text": "好!"},)}

    def records(failing: set[str]) -> dict[str, CheckRecord]:
        return {m: _record(f, **(bad if m in failing else {})) for m, f in val.items()}

    assert choose(records({"rcnn"}))[:2] == ("ensemble", None)
    best, why, _ = choose(records(set(val)))
    assert best == "rcnn" and "no candidate passes the behavioural floors" in why
    assert "rcnn (invariance 50.0% < 90%; failed inv-3 '好!')" in why


def test_choose_breaks_a_tie_by_the_listed_order():
    """An ensemble of one model scores exactly as that model: the model itself is chosen."""
    assert choose({"rcnn": _record(0.9), "ensemble": _record(0.9)})[:2] == ("rcnn", None)


def test_choose_takes_the_cheapest_of_the_candidates_tied_within_the_seed_spread():
    records = {"rcnn": _record(0.870, cost=1.4), "tfidf": _record(0.860, cost=0.1),
               "ensemble": _record(0.8715, cost=1.6)}
    best, behaviour, why = choose(records, tolerance=0.002)
    assert (best, behaviour) == ("rcnn", None)
    assert "cheapest to serve (1.40 ms a text)" in why and "ensemble 0.8715" in why
    assert choose(records, tolerance=0.0)[0] == "ensemble"  # no tolerance: the best on val
    assert choose(records, tolerance=0.02)[0] == "tfidf"


def test_a_missing_record_names_the_stage_that_writes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"rcnn\.json not found: run `dvc repro evaluate@rcnn` first"):
        CheckRecord.read(tmp_path / "rcnn.json")
    with pytest.raises(FileNotFoundError, match=r"run `dvc repro ensemble` first"):
        CheckRecord.read(tmp_path / "ensemble.json")


def test_the_ensemble_stage_chooses_its_members_on_validation():
    """Every subset of two or more is scored on val; within the tolerance the cheapest wins."""
    import torch

    from pipelines.ensemble import choose_members, subsets_of

    assert subsets_of(["a", "b", "c"]) == [("a", "b"), ("a", "c"), ("b", "c"), ("a", "b", "c")]
    assert subsets_of(["a"]) == [("a",)]
    target = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])

    def right_on(rows: list[int]) -> torch.Tensor:
        """Confident probabilities, right on `rows` and wrong elsewhere."""
        good = torch.nn.functional.one_hot(target, 2).float() * 0.8 + 0.1
        return torch.where(torch.isin(torch.arange(8), torch.tensor(rows)).unsqueeze(1), good, good.flip(1))

    # good is right everywhere, other on 6 of 8 rows, flat says nothing: good + flat is strictly best.
    probs = {"good": right_on(list(range(8))), "other": right_on([0, 1, 2, 3, 4, 5]),
             "flat": torch.full((8, 2), 0.5)}
    costs = {"good": 5.0, "other": 0.5, "flat": 0.1}
    choice = choose_members(probs, target, ["neg", "pos"], costs, tolerance=0.0)
    assert choice["members"] == ["good", "flat"] and choice["why"] == "best val macro-F1 (1.0000)"
    assert choice["subsets"][0]["members"] == ["good", "flat"]  # sorted by val
    cost = {tuple(r["members"]): r["cost_ms_per_text"] for r in choice["subsets"]}
    assert len(cost) == 4 and cost[("good", "other", "flat")] == 5.6
    everything_ties = choose_members(probs, target, ["neg", "pos"], costs, tolerance=1.0)
    assert everything_ties["members"] == ["other", "flat"] and "cheapest to serve" in everything_ties["why"]


def test_serving_cost_tells_a_slow_model_from_a_fast_one():
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers

    from training.cost import serving_cost

    tokenizer = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "a": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()

    class Work(torch.nn.Module):
        def __init__(self, rounds: int) -> None:
            super().__init__()
            self.rounds = rounds

        def forward(self, ids):
            x = torch.ones(128, 128)
            for _ in range(self.rounds):
                x = x @ x / 128
            return torch.zeros(len(ids), 2)

    texts = ["a a a"] * 64
    assert serving_cost(Work(50), tokenizer, texts) > 5 * serving_cost(Work(0), tokenizer, texts)

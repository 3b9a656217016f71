"""The n-gram baseline as a model of our own: logistic regression over a text's TF-IDF n-gram vector.

Character n-gram TF-IDF + logistic regression is the baseline every recurrent model here is compared with,
and it wins on long texts and on single-n-gram cues. This module computes the same vector from `input_ids`
(token 1..order-grams, hashed as training/ngrams.py does; for Chinese a token is a character): sublinear tf
(1 + ln count), smooth idf, L2 norm, as scikit-learn's TfidfVectorizer(sublinear_tf=True) does, then a
linear layer. The weights come from scikit-learn's LogisticRegression fitted on the train split, with C
chosen on validation. Everything is tensor arithmetic, so it exports to ONNX beside the recurrent models and
joins the ensemble's average; n-grams that touch a pad are masked, so it is padding-invariant.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from serving.contract import pad
from training.ngrams import ngram_ids

if TYPE_CHECKING:
    from scipy import sparse

log = logging.getLogger("textclf.tfidf")


class TfidfLR(nn.Module):
    """input_ids [batch, seq] → logits [batch, classes] of a linear model over the TF-IDF n-gram vector."""

    def __init__(self, vocab_size: int, num_classes: int, ngram_buckets: int = 262_144,
                 ngram_order: int = 3) -> None:
        super().__init__()
        self.vocab_size, self.buckets, self.order = vocab_size, ngram_buckets, ngram_order
        # Each order n >= 2 gets its own `ngram_buckets` rows: a bigram and a trigram never share one, so the
        # per-order counting below is exact and matches ngram_counts.
        rows = vocab_size + max(ngram_order - 1, 0) * ngram_buckets
        # idf 0 for n-grams seen in fewer than min_df train texts: they drop out, as outside a vectorizer's vocabulary.
        self.register_buffer("idf", torch.zeros(rows))
        self.weight = nn.Embedding(rows, num_classes)
        nn.init.zeros_(self.weight.weight)
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def rows(self, input_ids: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight rows [batch, seq-n+1], validity mask) for each n in 1..order."""
        parts = ngram_ids(input_ids, self.vocab_size, self.buckets, self.order)
        return [(ids + (n - 2) * self.buckets if n > 2 else ids, mask)
                for n, (ids, mask) in enumerate(parts, start=1)]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        dot, square = None, None
        for ids, mask in self.rows(input_ids):
            # Sorting puts a text's equal n-grams side by side, so each run's length is that n-gram's count
            # (O(L log L), where comparing every position with every other was O(L²)). Pads become -1, sort
            # first and are masked out; the sums below do not depend on the order of positions.
            key, _ = torch.where(mask, ids, torch.full_like(ids, -1)).sort(dim=1)
            starts = torch.cat([torch.ones_like(key[:, :1], dtype=torch.bool), key[:, 1:] != key[:, :-1]], dim=1)
            run = starts.long().cumsum(1) - 1
            ones = torch.ones_like(key, dtype=self.idf.dtype)
            count = torch.zeros_like(ones).scatter_add(1, run, ones).gather(1, run)
            rows = key.clamp(min=0)
            value = (1.0 + count.log()) * self.idf[rows]
            # Dividing by the count spreads one distinct n-gram's term over its occurrences, so sums over
            # positions are sums over distinct n-grams.
            share = value * (key >= 0).to(value.dtype) / count
            part_dot = (share.unsqueeze(-1) * self.weight(rows)).sum(1)
            part_square = (share * value).sum(1, keepdim=True)
            dot = part_dot if dot is None else dot + part_dot
            square = part_square if square is None else square + part_square
        return dot / square.sqrt().clamp(min=1e-12) + self.bias


def ngram_counts(model: TfidfLR, texts: Sequence[Sequence[int]], batch_size: int = 512) -> sparse.csr_matrix:
    """Texts' token ids → sparse [texts, rows] n-gram counts, with the model's own hashing."""
    from scipy import sparse  # fitting only: export and serving-side loading need neither scipy nor sklearn

    rows, cols = [], []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        for ids, mask in model.rows(torch.from_numpy(pad(chunk, max(len(t) for t in chunk) or 1))):
            r, c = mask.nonzero(as_tuple=True)
            rows.append(r.numpy() + start)
            cols.append(ids[r, c].numpy())
    shape = (len(texts), model.idf.shape[0])
    ones = np.ones(sum(len(r) for r in rows), dtype=np.float64)
    return sparse.csr_matrix((ones, (np.concatenate(rows), np.concatenate(cols))), shape=shape)  # sums repeats


def tfidf_matrix(counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
    from scipy import sparse
    from sklearn.preprocessing import normalize

    tf = counts.copy()
    tf.data = 1.0 + np.log(tf.data)
    return normalize(tf @ sparse.diags(idf))


@dataclass
class TfidfFit:
    c: float
    val_macro_f1: float
    val_accuracy: float
    grid: dict[float, float]  # C → val macro-F1
    features: int  # n-gram rows with a non-zero idf


def fit_tfidf_lr(model: TfidfLR, train: tuple[Sequence[Sequence[int]], Sequence[int]],
                 val: tuple[Sequence[Sequence[int]], Sequence[int]], c_grid: Sequence[float],
                 min_df: int = 2, max_iter: int = 2000) -> TfidfFit:
    """Fit idf and the logistic regression on train, keep the C with the best val macro-F1; loads the model."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    counts = ngram_counts(model, train[0])
    df = np.asarray((counts > 0).sum(0)).ravel()
    n = counts.shape[0]
    idf = np.where(df >= min_df, np.log((1.0 + n) / (1.0 + df)) + 1.0, 0.0)
    x_train, x_val = tfidf_matrix(counts, idf), tfidf_matrix(ngram_counts(model, val[0]), idf)
    y_train, y_val = np.asarray(train[1]), np.asarray(val[1])
    classes = model.weight.embedding_dim
    if sorted(set(y_train.tolist())) != list(range(classes)):
        raise ValueError(f"the train split must hold every one of the {classes} labels to fit tfidf")
    best, grid = None, {}
    for c in c_grid:
        clf = LogisticRegression(C=c, max_iter=max_iter).fit(x_train, y_train)
        pred = clf.predict(x_val)
        grid[c] = float(f1_score(y_val, pred, average="macro"))
        log.info("tfidf: C=%g val macro-F1 %.4f", c, grid[c])
        if best is None or grid[c] > grid[best[0].C]:
            best = (clf, float(np.mean(pred == y_val)))
    clf, val_accuracy = best
    coef, intercept = clf.coef_, clf.intercept_
    if classes == 2:  # scikit-learn keeps one row for two classes: logit(class 1) - logit(class 0)
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    with torch.no_grad():
        model.idf.copy_(torch.as_tensor(idf, dtype=model.idf.dtype))
        model.weight.weight.copy_(torch.as_tensor(coef.T, dtype=model.weight.weight.dtype))
        model.bias.copy_(torch.as_tensor(intercept, dtype=model.bias.dtype))
    return TfidfFit(float(clf.C), grid[clf.C], val_accuracy, grid, int((idf > 0).sum()))

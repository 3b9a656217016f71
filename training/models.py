"""The three classifiers. Bare nn.Modules: input_ids [batch, seq] (0 = pad, right-padded) → logits."""

from __future__ import annotations

import torch
from torch import nn

from serving.contract import PAD_ID
from training.encoder import MaskedRNN
from training.ngrams import NgramLogits
from training.tfidf import TfidfLR


def lengths_of(input_ids: torch.Tensor) -> torch.Tensor:
    # Every row has at least one token (the tokenizer turns an empty text into [UNK]).
    return (input_ids != PAD_ID).sum(dim=1).clamp(min=1)


class Classifier(nn.Module):
    """The token embedding; recurrent logits (`deep_logits`), plus the linear n-gram path's when `ngram_buckets` > 0.

    The recurrent part reads a text's first `recurrent_max_len` tokens (0: all); the n-gram path reads all of
    them. Long reviews often state their verdict at the end, which the cheap linear path still sees, while
    the recurrent part's cost stays bounded.
    """

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int, ngram_buckets: int, ngram_order: int,
                 recurrent_max_len: int = 0) -> None:
        super().__init__()
        self.ngrams = NgramLogits(vocab_size, num_classes, ngram_buckets, ngram_order) if ngram_buckets else None
        self.recurrent_max_len = recurrent_max_len
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)

    def deep_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # A constant slice bound keeps the sequence axis dynamic in the ONNX graph; right padding makes it exact.
        head = input_ids[:, : self.recurrent_max_len] if self.recurrent_max_len else input_ids
        logits = self.deep_logits(head)
        return logits if self.ngrams is None else logits + self.ngrams(input_ids)


class TextRNN(Classifier):
    """embedding → deep (bi)RNN → last valid hidden state → FC → ReLU/dropout → FC."""

    def __init__(
        self, vocab_size: int, num_classes: int, cell: str = "gru", embedding_dim: int = 128,
        hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = True,
        dropout: float = 0.3, fc_hidden: int = 128, ngram_buckets: int = 0, ngram_order: int = 3,
        recurrent_max_len: int = 0,
    ) -> None:
        super().__init__(vocab_size, num_classes, embedding_dim, ngram_buckets, ngram_order, recurrent_max_len)
        self.encoder = MaskedRNN(cell, embedding_dim, hidden_size, num_layers, bidirectional, dropout)
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(self.encoder.output_size, fc_hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(fc_hidden, num_classes),
        )

    def deep_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        lengths = lengths_of(input_ids)
        _, final = self.encoder(self.embedding(input_ids), lengths)
        return self.head(final)


class RCNN(Classifier):
    """Lai et al. 2015: [left context; word; right context] → linear → tanh → masked max-pool → FC."""

    def __init__(
        self, vocab_size: int, num_classes: int, cell: str = "lstm", embedding_dim: int = 128,
        hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.3, projection_size: int = 128,
        ngram_buckets: int = 0, ngram_order: int = 3, recurrent_max_len: int = 0,
    ) -> None:
        super().__init__(vocab_size, num_classes, embedding_dim, ngram_buckets, ngram_order, recurrent_max_len)
        self.encoder = MaskedRNN(cell, embedding_dim, hidden_size, num_layers, True, dropout)
        self.projection = nn.Linear(self.encoder.output_size + embedding_dim, projection_size)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(projection_size, num_classes)

    def deep_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = input_ids != PAD_ID
        embedded = self.embedding(input_ids)
        context, _ = self.encoder(embedded, lengths_of(input_ids))
        h = self.encoder.hidden_size
        latent = torch.tanh(self.projection(torch.cat([context[..., :h], embedded, context[..., h:]], -1)))
        latent = latent.masked_fill(~mask.unsqueeze(-1), torch.finfo(latent.dtype).min)
        return self.classifier(self.dropout(latent.max(dim=1).values))


class BiLSTM(Classifier):
    """Bidirectional LSTM → masked additive attention pooling over time → FC."""

    def __init__(
        self, vocab_size: int, num_classes: int, embedding_dim: int = 128, hidden_size: int = 128,
        num_layers: int = 1, dropout: float = 0.3, attention_size: int = 128, ngram_buckets: int = 0,
        ngram_order: int = 3, recurrent_max_len: int = 0,
    ) -> None:
        super().__init__(vocab_size, num_classes, embedding_dim, ngram_buckets, ngram_order, recurrent_max_len)
        self.encoder = MaskedRNN("lstm", embedding_dim, hidden_size, num_layers, True, dropout)
        self.attention = nn.Sequential(
            nn.Linear(self.encoder.output_size, attention_size), nn.Tanh(), nn.Linear(attention_size, 1)
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.encoder.output_size, num_classes)

    def deep_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = input_ids != PAD_ID
        outputs, _ = self.encoder(self.embedding(input_ids), lengths_of(input_ids))
        scores = self.attention(outputs).squeeze(-1)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)
        return self.classifier(self.dropout((weights * outputs).sum(dim=1)))


# tfidf is not recurrent and not trained by gradient descent: scikit-learn fits it (training/fit.py, fit_tfidf).
MODELS: dict[str, type[nn.Module]] = {"textrnn": TextRNN, "rcnn": RCNN, "bilstm": BiLSTM, "tfidf": TfidfLR}


def build_model(name: str, vocab_size: int, num_classes: int, **config: object) -> nn.Module:
    """Instantiate a classifier by name with its params section as keyword arguments."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name](vocab_size=vocab_size, num_classes=num_classes, **config)

"""The RNN language model: next-token prediction on a contiguous token stream with truncated BPTT.

A forward and a backward model (the backward one reads the stream reversed) give the forward and the
backward directions of the bidirectional classifiers something to start from.
"""

from __future__ import annotations

import math

import torch
from lightning import LightningModule
from torch import nn

from training.encoder import CELLS


class LanguageModel(nn.Module):
    """embedding → stacked LSTM → adaptive softmax (cheap on a 2-core CPU for a Zipfian vocabulary)."""

    def __init__(self, vocab_size: int, embedding_dim: int = 128, hidden_size: int = 128, num_layers: int = 1,
                 dropout: float = 0.2, cutoffs: tuple[int, ...] = (1000, 3000)) -> None:
        super().__init__()
        self.vocab_size, self.embedding_dim, self.hidden_size = vocab_size, embedding_dim, hidden_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        # One single-layer LSTM per layer, so each maps onto one layer of the classifiers' MaskedRNN.
        sizes = [embedding_dim] + [hidden_size] * (num_layers - 1)
        self.layers = nn.ModuleList(CELLS["lstm"](s, hidden_size, batch_first=True) for s in sizes)
        self.dropout = nn.Dropout(dropout)
        cutoffs = tuple(c for c in cutoffs if c < vocab_size - 1) or (max(1, vocab_size // 2),)
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(hidden_size, vocab_size, list(cutoffs), div_value=2.0)

    def hidden_states(self, ids: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        x = self.dropout(self.embedding(ids))
        new_state = []
        for i, layer in enumerate(self.layers):
            x, s = layer(x, None if state is None else state[i])
            new_state.append(s)
            x = self.dropout(x)
        return x, new_state

    def loss(self, ids: torch.Tensor, targets: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        hidden, state = self.hidden_states(ids, state)
        out = self.softmax(hidden.reshape(-1, self.hidden_size), targets.reshape(-1))
        return out.loss, state

    @torch.inference_mode()
    def sample(self, prompt: list[int], length: int, temperature: float = 0.8, seed: int = 0) -> list[int]:
        """Continue `prompt` by sampling `length` tokens at the given temperature."""
        generator = torch.Generator().manual_seed(seed)
        self.eval()
        hidden, state = self.hidden_states(torch.tensor([prompt]))
        out = []
        for _ in range(length):
            logp = self.softmax.log_prob(hidden[:, -1]) / max(temperature, 1e-3)
            logp[:, :2] = -math.inf  # never [PAD] or [UNK]
            token = int(torch.multinomial(torch.softmax(logp, -1), 1, generator=generator))
            out.append(token)
            hidden, state = self.hidden_states(torch.tensor([[token]]), state)
        return out


def detach(state: list) -> list:
    return [tuple(t.detach() for t in s) for s in state]


class LanguageModelModule(LightningModule):
    """Truncated BPTT: each batch is the next window of every stream; the state carries over, detached."""

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int, dropout: float,
                 lr: float) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = LanguageModel(vocab_size, embedding_dim, hidden_size, num_layers, dropout)
        self.state: list | None = None
        self.val_state: list | None = None

    def on_train_epoch_start(self) -> None:
        self.state = None

    def on_validation_epoch_start(self) -> None:
        self.val_state = None

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        ids, targets = batch
        loss, state = self.model.loss(ids, targets, self.state)
        self.state = detach(state)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train_ppl", loss.exp(), on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        ids, targets = batch
        loss, self.val_state = self.model.loss(ids, targets, self.val_state)
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=targets.numel())
        self.log("val_ppl", loss.exp(), on_step=False, on_epoch=True, prog_bar=True, batch_size=targets.numel())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class StreamWindows(torch.utils.data.Dataset):
    """A token stream cut into `streams` parallel rows; item i is window i of every row (input, next tokens)."""

    def __init__(self, ids: torch.Tensor, streams: int, bptt: int) -> None:
        usable = (len(ids) - 1) // streams * streams
        if usable < streams * 2:
            raise ValueError(f"the unlabelled corpus has {len(ids)} tokens: too few for {streams} streams")
        self.inputs = ids[:usable].view(streams, -1)
        self.targets = ids[1 : usable + 1].view(streams, -1)
        self.bptt = bptt

    def __len__(self) -> int:
        return math.ceil(self.inputs.size(1) / self.bptt)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        window = slice(i * self.bptt, (i + 1) * self.bptt)
        return self.inputs[:, window], self.targets[:, window]

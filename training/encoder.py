"""A padding-invariant stacked (bi)directional RNN.

nn.LSTM(bidirectional=True) on right-padded input lets the backward direction read the pads first,
so a text's output depends on its batch. Packed sequences fix that but export to ONNX badly. Here the
backward direction is a forward RNN over each sequence reversed *within its own length* (a gather),
flipped back afterwards: exact, cuDNN-fast, and exportable with dynamic batch and sequence axes.
"""

from __future__ import annotations

import torch
from torch import nn

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each [batch, seq, ...] row over its first `lengths[b]` steps, leaving pads in place."""
    seq = x.size(1)
    steps = torch.arange(seq, device=x.device).unsqueeze(0)  # [1, seq]
    lens = lengths.unsqueeze(1)
    index = torch.where(steps < lens, lens - 1 - steps, steps)  # [batch, seq]
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


def last_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x[b, lengths[b] - 1] for [batch, seq, dim]."""
    index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, x.size(2))
    return x.gather(1, index).squeeze(1)


class MaskedRNN(nn.Module):
    """Stacked RNN whose every layer is one `cell` per direction; dropout between layers only."""

    def __init__(
        self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
        bidirectional: bool = False, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
        rnn = CELLS[cell]
        self.cell, self.hidden_size, self.bidirectional = cell, hidden_size, bidirectional
        self.num_directions = 2 if bidirectional else 1
        sizes = [input_size] + [hidden_size * self.num_directions] * (num_layers - 1)
        self.forward_layers = nn.ModuleList(rnn(s, hidden_size, batch_first=True) for s in sizes)
        self.backward_layers = (
            nn.ModuleList(rnn(s, hidden_size, batch_first=True) for s in sizes) if bidirectional else None
        )
        self.dropout = nn.Dropout(dropout)

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.num_directions

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (outputs [batch, seq, dirs*hidden], final state [batch, dirs*hidden]).

        The final state is the forward direction at the last valid step and the backward direction
        at step 0, i.e. each direction after reading the whole text.
        """
        for i, fwd in enumerate(self.forward_layers):
            if i:
                x = self.dropout(x)
            out, _ = fwd(x)
            if self.backward_layers is not None:
                rev, _ = self.backward_layers[i](reverse_within_length(x, lengths))
                out = torch.cat([out, reverse_within_length(rev, lengths)], dim=-1)
            x = out
        final = last_valid(x[..., : self.hidden_size], lengths)
        if self.bidirectional:
            final = torch.cat([final, x[:, 0, self.hidden_size :]], dim=-1)
        return x, final

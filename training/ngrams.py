"""A linear bag-of-n-grams path beside the recurrent encoder ("wide & deep", Cheng et al. 2016).

The recurrent models lose to a character n-gram linear model mostly on long texts and on cues that a
single n-gram carries ("好看", "失望"). This path adds, to the recurrent logits, the mean of a learned
per-class weight for every 1..order-gram of the text's token ids (fastText-style hashing, Joulin et al.
2017). It is computed from `input_ids` with integer arithmetic only, so it lives inside the same ONNX
graph and serving changes nothing; n-grams that touch a pad are masked, so it is padding-invariant.
"""

from __future__ import annotations

import torch
from torch import nn

from serving.contract import PAD_ID

# Odd multiplier for rolling hashes of 2+-grams; the remainder after each step keeps int64 from overflowing.
_MULTIPLIER = 1_000_003


class NgramLogits(nn.Module):
    """input_ids [batch, seq] → logits [batch, classes]: mean over the text's n-grams of a per-bucket weight."""

    def __init__(self, vocab_size: int, num_classes: int, buckets: int, order: int = 3) -> None:
        super().__init__()
        if order < 1:
            raise ValueError(f"ngram_order must be at least 1, got {order}")
        self.vocab_size, self.buckets, self.order = vocab_size, buckets, order
        # Unigrams index the first vocab_size rows exactly; longer n-grams hash into the next `buckets`.
        self.weight = nn.Embedding(vocab_size + buckets, num_classes)
        nn.init.zeros_(self.weight.weight)  # starts as the recurrent model alone

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        total, count = None, None
        for ids, mask in ngram_ids(input_ids, self.vocab_size, self.buckets, self.order):
            weights = self.weight(ids) * mask.unsqueeze(-1).to(self.weight.weight.dtype)
            part, n = weights.sum(dim=1), mask.sum(dim=1, keepdim=True)
            total = part if total is None else total + part
            count = n if count is None else count + n
        return total / count.clamp(min=1).to(total.dtype)


def ngram_ids(input_ids: torch.Tensor, vocab_size: int, buckets: int,
              order: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(row ids [batch, seq-n+1], validity mask) for each n in 1..order.

    Unigrams are their token ids (rows 0..vocab_size-1); longer n-grams hash into the next `buckets` rows.
    """
    valid = input_ids != PAD_ID
    out = [(input_ids, valid)]
    for n in range(2, order + 1):
        # Constant slice bounds (not size arithmetic) keep the sequence axis dynamic in the ONNX graph.
        h = input_ids[:, : 1 - n]
        for k in range(1, n):
            end = k - n + 1
            h = (h * _MULTIPLIER + input_ids[:, k : end if end else None] + n) % buckets
        # Right-padded input: an n-gram is all real tokens exactly when its last token is.
        out.append((h + vocab_size, valid[:, n - 1 :]))
    return out

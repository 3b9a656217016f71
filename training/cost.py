"""What a model costs to serve, measured: milliseconds per text on this machine's CPU threads.

Measured with PyTorch in inference mode on a fixed sample of texts in batches of 32 (the service's adaptive
batches are of that order), median of a few passes after a warm-up. It ranks candidates; bench/ measures the
service itself.
"""

from __future__ import annotations

import statistics
import time

import torch
from tokenizers import Tokenizer

from serving.contract import encode, pad


@torch.inference_mode()
def serving_cost(model: torch.nn.Module, tokenizer: Tokenizer, texts: list[str], batch_size: int = 32,
                 repeats: int = 3) -> float:
    """Median over `repeats` passes of the milliseconds per text to score `texts`."""
    ids = encode(tokenizer, texts)
    batches = [torch.from_numpy(pad(ids[i : i + batch_size])) for i in range(0, len(ids), batch_size)]
    model.eval()
    model(batches[0])  # warm-up: first-call allocations and kernel selection
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            model(batch)
        passes.append((time.perf_counter() - start) * 1000 / len(ids))
    return round(statistics.median(passes), 4)

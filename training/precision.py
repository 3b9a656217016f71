"""`precision: auto`: bfloat16 mixed precision where the hardware computes it natively, float32 elsewhere.

On a CPU with AVX512-BF16 or AMX (and on a GPU with bf16) the recurrent layers run about a third faster in
bf16-mixed at the same validation score (bench/RESULTS.md, seeds 42, 1, 2); without them bf16 is emulated and
slower, so auto keeps float32. The weights stay float32 either way, and export is float32.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@cache
def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        flags = next((line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), "")
    except OSError:  # not Linux: keep float32
        return False
    return any(flag in flags.split() for flag in NATIVE_BF16_FLAGS)


def resolve_precision(setting: str, accelerator: str = "auto") -> str:
    """The Lightning precision for `setting`; `auto` picks bf16-mixed on native bf16 hardware, else 32-true."""
    if setting != "auto":
        return setting
    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if on_gpu:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"

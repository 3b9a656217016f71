"""What every stage entry point shares: the params path argument, quiet libraries, one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from serving.store import StoreError
from training.tracking import TrackingError

# Offline and quiet by default: nothing phones home.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Errors a user can cause: shown as one line, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, TrackingError, StoreError)
FOLDERS = {"data": "data/processed", "models": "models", "metrics": "metrics"}  # where the stages hand over


def parser(description: str, *folders: str) -> argparse.ArgumentParser:
    """--params, and a --<folder> option for each of `folders` (FOLDERS' names), defaulting to its usual place."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    for folder in folders:
        p.add_argument(f"--{folder}", type=Path, default=FOLDERS[folder])
    return p


def run(main: Callable[[], None]) -> None:
    """Run a stage; a user error prints `error: ...` and exits 2 instead of a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        main()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)

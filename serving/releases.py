"""The release channel: the champion's bundles, and a pointer saying which one to serve.

    <channel>/champion.json         {"bundle": "v3-1a2b3c4d5e6f", "version": "3", "labels": [...],
                                     "registered_model": ..., "model_uri": ..., "published": ..., "reason": ...}
    <channel>/v3-1a2b3c4d5e6f/      model.onnx, tokenizer.json, meta.json; never changed once written

The package stage and `pipelines.rollback` publish; every serving worker polls the pointer (serving/rollout.py).
A bundle folder is complete (written aside, then renamed) before the pointer names it, and the pointer is
replaced with one `os.replace`, so a reader sees the old release or the new one, never half of one. The channel
is plain files: a shared filesystem whose rename is atomic (NFS, EFS; not a FUSE-mounted bucket, which copies on
rename) lets a fleet of services follow one champion.
Standard library and the contract only: the serving image imports this.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serving.contract import BUNDLE_FILES, MODEL_FILE, TOKENIZER_FILE, read_meta

POINTER = "champion.json"
logger = logging.getLogger("textclf.serving")
KEEP = 5  # releases kept on disk (the one the pointer names always is): room to roll back without the registry


class ReleaseError(RuntimeError):
    """The channel's pointer is missing or unreadable, or names a bundle that is not there."""


@dataclass(frozen=True)
class Release:
    key: str  # the bundle's folder name in the channel
    bundle: Path
    version: str
    labels: tuple[str, ...]  # what the publisher promised; the bundle must agree

    @property
    def name(self) -> str:
        return f"v{self.version} ({self.key})"


def is_channel(path: Path) -> bool:
    """A channel has a pointer; a path with neither a pointer nor a bundle is taken for a channel not yet
    published to (a first deploy, a mount not there yet), so the service waits for it."""
    return (path / POINTER).is_file() or not (path / MODEL_FILE).is_file()


def read_release(channel: Path) -> Release:
    """The release the pointer names; a `ReleaseError` says what is wrong with it."""
    pointer = channel / POINTER
    try:
        data = json.loads(pointer.read_text(encoding="utf-8"))
        key, version, labels = str(data["bundle"]), str(data["version"]), tuple(str(x) for x in data["labels"])
    except FileNotFoundError:
        raise ReleaseError(f"{channel} has no {POINTER} (nor a model.onnx) yet: `dvc repro` (its package stage) or "
                           "`python -m pipelines.rollback --to N` publishes there, or set TEXTCLF_BUNDLE to a "
                           "bundle folder") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReleaseError(f"cannot read {pointer}: {exc!r}; republish with `python -m pipelines.rollback --to N`") \
            from exc
    if "/" in key or key.startswith("."):
        raise ReleaseError(f"{pointer}: 'bundle' must name a folder in {channel}, got {key!r}")
    return Release(key, channel / key, version, labels)


def content_key(bundle: Path, version: str) -> str:
    """The folder name of a bundle in the channel: its version and a digest of what it scores with, so a
    registry rebuilt from scratch that hands out version 1 again never reuses an old folder."""
    digest = hashlib.sha256()
    for name in (MODEL_FILE, TOKENIZER_FILE):
        digest.update((bundle / name).read_bytes())
    return f"v{version}-{digest.hexdigest()[:12]}"


def publish(bundle: Path, channel: Path, reason: str, keep: int = KEEP) -> Release:
    """Copy `bundle` into the channel (once) and point the channel at it; returns the release.

    Everything written is world-readable: the services of a fleet may run as other users than the publisher."""
    meta = read_meta(bundle)
    version, labels = meta.version, list(meta.labels)
    if not channel.is_dir():
        channel.mkdir(parents=True)
        channel.chmod(0o755)
    key = content_key(bundle, version)
    dest = channel / key
    if not dest.is_dir():
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=channel))
        for name in BUNDLE_FILES:
            shutil.copyfile(bundle / name, staging / name)
            (staging / name).chmod(0o644)
        staging.chmod(0o755)  # mkdtemp makes it private
        try:
            os.replace(staging, dest)
        except OSError:  # another publisher put the same release there first: theirs is as good
            shutil.rmtree(staging, ignore_errors=True)
            if not dest.is_dir():
                raise
    os.utime(dest)  # pruning keeps the most recently published
    write_atomically(channel / POINTER, {
        "bundle": key, "version": version, "labels": labels, "model_name": meta.model_name,
        "registered_model": meta.registered_model, "model_uri": meta.model_uri,
        "published": datetime.now(UTC).isoformat(timespec="seconds"), "reason": reason,
    })
    prune(channel, keep, key)
    return Release(key, dest, version, tuple(labels))


def write_atomically(path: Path, payload: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(payload, f, ensure_ascii=False, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)  # mkstemp makes it private
    os.replace(tmp, path)


def prune(channel: Path, keep: int, current: str) -> None:
    """Delete all but the `keep` newest release folders, never the current one, and staging folders a crashed
    publisher left behind. A worker that still serves a deleted release keeps it in memory (onnxruntime and
    tokenizers read their files once)."""
    folders = sorted((p for p in channel.iterdir() if p.is_dir() and p.name.startswith("v") and p.name != current),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    stale = [p for p in channel.glob(".v*") if p.is_dir() and time.time() - p.stat().st_mtime > 3600]
    for old in [*folders[max(0, keep - 1):], *stale]:
        shutil.rmtree(old, onerror=lambda _f, path, exc: logger.warning("cannot prune %s: %s", path, exc[1]))

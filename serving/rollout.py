"""Follow the release channel in each worker: load and warm a new champion beside the old one, then swap.

A thread polls the channel's pointer every `TEXTCLF_RELOAD_INTERVAL_S`. A new release is loaded, checked and
warmed up off the request path while the old model keeps answering; then one attribute assignment swaps it in
(atomic under the GIL). A request reads that attribute once, so one version answers it wholly; requests still
running on the old model finish with it, and the old model is freed when the last of them lets go.

A release that fails to load, fails its warm-up, or has other labels than its pointer promised or than the
served model has, is refused: the old model keeps serving, one log line says why, and `/model` and the
`textclf_model_reloads_total{outcome="refused"}` counter report it. A changed pointer is tried again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from serving.contract import BundleError, is_complete
from serving.predictor import OnnxPredictor
from serving.releases import Release, ReleaseError, is_channel, read_release

logger = logging.getLogger("textclf.serving")
# Chinese, English, the empty-text ([UNK]) path, and a full batch of long texts, so onnxruntime has sized its
# buffers for real traffic before the first request reaches the new model.
WARM_UP_TEXTS = ["warm-up", "预热", "", *(["这本书写得很好，推荐给大家。" * 8] * 32)]


@dataclass(frozen=True)
class Served:
    """One loaded model: what a request reads once and uses throughout."""

    predictor: OnnxPredictor
    version: str
    release: str  # the channel folder, or the bundle path when not following a channel
    loaded_at: float


def load(bundle: Path, threads: int, promised: tuple[str, ...] | None = None,
         served: tuple[str, ...] | None = None) -> OnnxPredictor:
    """Load a bundle and prove it answers; a `BundleError` names what is wrong."""
    predictor = OnnxPredictor(bundle, intra_op_threads=threads)
    labels = predictor.labels
    if promised is not None and labels != promised:
        raise BundleError(f"its labels {list(labels)} are not the {list(promised)} its pointer promised")
    if served is not None and labels != served:
        raise BundleError(f"its labels {list(labels)} differ from the served model's {list(served)}; clients "
                          "rely on them, so a model with other labels needs a restart")
    probs = predictor.probabilities(WARM_UP_TEXTS)
    if probs.shape != (len(WARM_UP_TEXTS), len(labels)) or not np.isfinite(probs).all() \
            or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise BundleError(f"its warm-up gave no probabilities (shape {probs.shape}, sums {probs.sum(axis=1)[:3]})")
    return predictor


class Follower:
    """Holds the served model of one worker; follows a channel when `source` is one and `interval_s` > 0."""

    def __init__(self, source: Path, interval_s: float, threads: int,
                 on_reload: Callable[[str], None] = lambda outcome: None) -> None:
        self.source = source
        self.channel = is_channel(source)
        self.interval_s = interval_s
        self.threads = threads
        self.on_reload = on_reload
        self.current: Served | None = None
        self.refused: dict[str, Any] | None = None
        self.checked_at: float | None = None
        self.swaps = 0
        self._refused_key: str | None = None
        self._pointer_error: str | None = None
        self._thread: threading.Thread | None = None

    @property
    def following(self) -> bool:
        return self.channel and self.interval_s > 0

    def start(self) -> None:
        """Load what the source names now (raising if it is unusable), then follow it in the background."""
        try:
            if self.channel:
                self.check(first=True)
            else:
                predictor = load(self.source, self.threads)
                self.current = Served(predictor, predictor.info.version, str(self.source), time.time())
        finally:
            if self.following:  # nothing usable at start-up: the next good release makes the worker ready
                self._thread = threading.Thread(target=self._run, name="textclf-rollout", daemon=True)
                self._thread.start()

    def check(self, first: bool = False) -> None:
        """One poll of the channel: swap in a new release, or refuse it. With `first`, what keeps the worker
        from serving is raised, so start-up can say it."""
        self.checked_at = time.time()
        try:
            release = read_release(self.source)
        except ReleaseError as exc:  # not published yet, or a hand-edited pointer: keep serving, say it once
            if str(exc) != self._pointer_error and not first:
                logger.warning("textclf: release pointer unreadable, still serving %s: %s", self._serving(), exc)
            self._pointer_error = str(exc)
            if first:
                raise
            return
        self._pointer_error = None
        if self.current is not None and release.key == self.current.release:
            self.refused = self._refused_key = None  # pointed back at what is served: nothing is pending
            return
        if release.key == self._refused_key:
            return
        if not is_complete(release.bundle):
            # A shared filesystem may show the pointer before the folder (NFS attribute caching): not a refusal,
            # checked again next poll.
            self._wait(release)
            if first:
                raise BundleError(self.refused["reason"])
            return
        try:
            self._load(release)
        except Exception as exc:
            self._refuse(release, exc)
            if first:
                raise

    def _load(self, release: Release) -> None:
        served = self.current.predictor.labels if self.current is not None else None
        predictor = load(release.bundle, self.threads, release.labels, served)
        if predictor.info.version != release.version:
            raise BundleError(f"its meta.json says version {predictor.info.version}, the pointer {release.version}")
        before = self.current
        self.current = Served(predictor, release.version, release.key, time.time())  # the swap
        self.refused = self._refused_key = None
        if before is not None:
            self.swaps += 1
            self.on_reload("swapped")
        logger.info("textclf: now serving %s %s from %s%s", predictor.info.model_name, release.name, self.source,
                    f" (was v{before.version})" if before is not None else "")

    def _wait(self, release: Release) -> None:
        reason = f"{release.bundle} is not complete yet; checked again every {self.interval_s:g} s"
        if (self.refused or {}).get("reason") != reason:
            logger.warning("textclf: %s named by the pointer, still serving %s: %s", release.name, self._serving(),
                           reason)
        self.refused = {"release": release.key, "version": release.version, "reason": reason, "at": iso(time.time())}

    def _refuse(self, release: Release, exc: Exception) -> None:
        self._refused_key = release.key
        self.refused = {"release": release.key, "version": release.version, "reason": str(exc),
                        "at": iso(time.time())}
        self.on_reload("refused")
        logger.error("textclf: refused %s from %s, still serving %s: %s (publish another release, e.g. "
                     "`python -m pipelines.rollback --to N`)", release.name, self.source, self._serving(), exc)

    def _serving(self) -> str:
        return f"v{self.current.version}" if self.current is not None else "nothing"

    def _run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            try:
                self.check()
            except Exception:
                logger.exception("textclf: release check failed")

    def describe(self) -> dict[str, Any]:
        """What GET /model shows under `rollout`."""
        current = self.current
        return {
            "source": str(self.source), "following": self.following, "interval_s": self.interval_s,
            "release": current.release if current else None,
            "loaded_at": iso(current.loaded_at) if current else None,
            "checked_at": iso(self.checked_at) if self.checked_at else None,
            "swaps": self.swaps, "refused": self.refused,
        }


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")

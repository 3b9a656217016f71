"""Run a command as a child process and measure it: wall seconds and peak RSS, under a memory cap.

The cap is a watchdog, not the OOM killer: the process tree's resident memory is polled, and a tree past the
cap is ended and reported as such. The peak is the kernel's own high-water mark of each process in the tree
(VmHWM, read at every poll and summed over the tree), so a short spike between polls still counts.

Not ru_maxrss from wait4: a child forked from this (large) Python process starts out sharing its pages, and
Linux keeps that pre-exec size in the child's ru_maxrss, so every stage would look at least as big as the
bench itself. VmHWM belongs to the address space exec gives the command, so it is the command's own.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mb: float
    returncode: int
    capped: bool  # ended by the watchdog
    log: str

    def ok(self, *codes: int) -> bool:
        """Ran to its end with one of `codes` (default 0), the watchdog never stepping in."""
        return self.returncode in (codes or (0,)) and not self.capped


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a child that ended between listing and reading
            total += p.memory_info().rss
    return total


def high_water(pid: int) -> int:
    """A process's peak resident bytes so far (VmHWM), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_high_water(process: psutil.Process, seen: dict[int, int]) -> int:
    """The tree's peak: each process's own high-water mark (kept after it exits), summed."""
    with contextlib.suppress(psutil.Error):
        for p in [process, *process.children(recursive=True)]:
            seen[p.pid] = max(seen.get(p.pid, 0), high_water(p.pid))
    return sum(seen.values())


def run_measured(cmd: Sequence[str], cap_mb: float, cwd: Path, env: Mapping[str, str] | None = None,
                 log: Path | None = None, poll_s: float = 0.1) -> Measured:
    """Run `cmd` to the end (or to the cap); its output goes to `log` (the tail comes back in `Measured.log`)."""
    log = log or Path(os.devnull)
    with open(log, "w", encoding="utf-8") as out:
        start = time.perf_counter()
        child = subprocess.Popen(list(cmd), cwd=cwd, env={**os.environ, **(env or {})}, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        watched = psutil.Process(child.pid)
        peak, capped, done, marks = 0, False, threading.Event(), {}

        def watch() -> None:
            nonlocal peak, capped
            while not done.is_set():
                try:
                    now = tree_rss(watched)
                    peak = max(peak, now, tree_high_water(watched, marks))
                except psutil.Error:
                    return
                if now > cap_mb * 2**20:
                    capped = True
                    os.killpg(child.pid, signal.SIGKILL)
                    return
                done.wait(poll_s)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            _, status, _ = os.wait4(child.pid, 0)
        except BaseException:  # the bench itself interrupted: end the stage's process group with it
            os.killpg(child.pid, signal.SIGKILL)
            raise
        seconds = time.perf_counter() - start
        done.set()
        watcher.join()
    peak_mb = peak / 2**20
    text = log.read_text(encoding="utf-8", errors="replace")[-3000:] if log != Path(os.devnull) else ""
    return Measured(seconds, peak_mb, os.waitstatus_to_exitcode(status), capped, text)


def growth_exponent(rows: Sequence[float], values: Sequence[float]) -> float:
    """The slope of log(value) against log(rows), least squares: 1 is linear, 0 flat, below 1 sublinear."""
    xs, ys = [math.log(r) for r in rows], [math.log(max(v, 1e-9)) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)

"""Time windows for the monitor and the review queue: ISO-8601 bounds, default the last 24 hours."""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass

from serving.store import DEFAULT_URL

DEFAULT_HOURS = 24.0


def store_url(explicit: str | None = None) -> str:
    """The store the service writes to: --store, else TEXTCLF_FEEDBACK_URL, else the default SQLite file."""
    return explicit or os.environ.get("TEXTCLF_FEEDBACK_URL") or DEFAULT_URL


def parse_time(value: str, name: str) -> float:
    """ISO-8601 (a date, or date and time; no zone means UTC) to epoch seconds; a bad value names the option."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not an ISO-8601 time; use e.g. 2026-12-04 or "
                         "2026-12-04T09:30:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


@dataclass(frozen=True)
class Window:
    since: float
    until: float

    def as_dict(self) -> dict[str, str]:
        def iso(t: float) -> str:
            return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

        return {"since": iso(self.since), "until": iso(self.until)}


def window(since: str | None, until: str | None, hours: float = DEFAULT_HOURS) -> Window:
    end = parse_time(until, "--until") if until else time.time()
    start = parse_time(since, "--since") if since else end - hours * 3600
    if start >= end:
        raise ValueError(f"--since must be before --until (got {since or start} and {until or end})")
    return Window(start, end)

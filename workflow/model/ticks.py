"""A schedule's tick: the run id it gets (`NAME-<time, compact UTC>`, the same from Cloud
Scheduler, a hand-made request or `backfill`, so a tick delivered twice starts one run),
its time in RFC 3339, and what a schedule's name and concurrency may be."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from .text import excerpt

SCHEDULE_TIME_HEADER = "X-CloudScheduler-ScheduleTime"
"""The header Cloud Scheduler sets on each HTTP call: the tick's scheduled time, RFC 3339."""
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
CONCURRENCY = ("forbid", "allow", "replace")
"""What a tick does while the schedule's previous run is RUNNING: start nothing (recorded
SKIPPED), start anyway, or cancel that run and start."""
COMPACT = "%Y%m%dT%H%M%SZ"


def name_problem(value: Any) -> str | None:
    """Why `value` cannot name a schedule (it starts its ticks' run ids), or None."""
    if isinstance(value, str) and NAME.match(value):
        return None
    shown = excerpt(value, 80) if isinstance(value, str) else type(value).__name__
    return f"schedule {shown!r} is not 1-63 of A-Z a-z 0-9 _ - (starting with a letter or digit)"


def run_id(schedule: str, at: float) -> str:
    """The id of the schedule's run for the tick at `at` (epoch seconds, whole seconds kept)."""
    return f"{schedule}-{datetime.fromtimestamp(int(at), UTC).strftime(COMPACT)}"


def rfc3339(at: float) -> str:
    """`at` (epoch seconds) as Cloud Scheduler writes a schedule time: 2026-11-01T00:00:00Z."""
    return datetime.fromtimestamp(int(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any, name: str) -> tuple[float | None, str | None]:
    """(epoch seconds, whole, None) of an RFC 3339 time with its offset, or (None, why not)."""
    shown = excerpt(value, 60) if isinstance(value, str) else type(value).__name__
    problem = f"{name} {shown!r} is not an RFC 3339 time with its offset, e.g. 2026-11-01T00:00:00Z"
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d", value):
        return None, problem
    try:
        parsed = datetime.fromisoformat(value.upper())
    except ValueError:
        return None, problem
    if parsed.tzinfo is None:
        return None, problem
    return float(int(parsed.timestamp())), None

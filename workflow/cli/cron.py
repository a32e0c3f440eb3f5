"""The ticks of a cron schedule between two dates, as Cloud Scheduler's unix-cron reads it
(five fields, in a time zone), for `backfill`.

Daylight-saving time follows Debian's cron (cronsim): a tick at a fixed time that falls in
the hour skipped when clocks go forward comes at the first minute after the gap (02:30 on
the spring-forward night in America/New_York comes at 03:00); one in the hour that repeats
when clocks go back comes once, at its first occurrence. Expressions with `*` in the minute
or hour field run by elapsed time through the change (each real hour once).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from ..errors import InputError
from ..model.text import excerpt

MAX_TICKS = 1000
"""The most ticks one backfill starts (split a longer range)."""


def zone(name: str) -> ZoneInfo:
    """The tz database zone `name` (UTC, Europe/Berlin, ...); InputError if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"--time-zone {excerpt(name, 60)!r} is not a tz database name such as UTC or "
                         "America/New_York") from None


def day(raw: str, option: str) -> date:
    """A date written YYYY-MM-DD; InputError naming `option` otherwise."""
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InputError(f"{option} {excerpt(raw, 40)!r} is not a date written YYYY-MM-DD") from None


def ticks(cron: str, tz: ZoneInfo, first: date, last: date) -> list[datetime]:
    """Every tick of `cron` in `tz` on the days `first` to `last` (inclusive), in order, as
    aware datetimes. InputError for a bad expression, a reversed range or too many ticks."""
    if len(cron.split()) != 5:
        raise InputError(f"--cron {excerpt(cron, 80)!r}: five fields (minute hour day-of-month month "
                         "day-of-week), as Cloud Scheduler takes them")
    if last < first:
        raise InputError(f"--to {last} is before --from {first}")
    start = datetime.combine(first, time(), tz) - timedelta(seconds=1)
    try:
        found = CronSim(cron, start)
    except CronSimError as exc:
        raise InputError(f"--cron {excerpt(cron, 80)!r}: {exc}") from None
    result: list[datetime] = []
    for at in found:
        if at.date() > last:
            break
        if len(result) == MAX_TICKS:
            raise InputError(f"{cron!r} has more than {MAX_TICKS} ticks from {first} to {last}: backfill a "
                             "shorter range at a time")
        result.append(at)
    return result

"""Spans of a client's local day (a mailing's window, the day outside quiet hours): whether a local
time is inside them and when they next open. Pure functions; the engine, the form and the pages
use them (Mailing.send_windows says which spans hold a mailing).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache

Window = tuple[time, time]


@lru_cache(maxsize=1024)
def zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def in_window(local: time, start: time, end: time) -> bool:
    """Is a local wall-clock time inside [start, end)? A window with start > end crosses midnight."""
    if start < end:
        return start <= local < end
    return local >= start or local < end


def in_windows(local: time, windows: Sequence[Window]) -> bool:
    return all(in_window(local, start, end) for start, end in windows)


def local_time(at: datetime, tz_name: str) -> time:
    return at.astimezone(zone(tz_name)).time().replace(tzinfo=None)


def opens_at(now: datetime, tz_name: str, windows: Sequence[Window]) -> datetime | None:
    """The earliest instant >= now at which the client's local time is inside every window; None
    if the windows have no time in common.

    Such an instant is now or one of the windows' starts, within two days. DST: a start that falls
    into a spring-forward gap opens at the first valid instant after it (never early); in a
    fall-back overlap the first occurrence counts.
    """
    if in_windows(local_time(now, tz_name), windows):
        return now
    tz = zone(tz_name)
    local = now.astimezone(tz)
    for days in (0, 1, 2):
        day = local.date() + timedelta(days=days)
        found = [
            at
            for start, _end in windows
            for fold in (0, 1)
            if (at := datetime.combine(day, start, tzinfo=tz).replace(fold=fold).astimezone(UTC)) > now
            and in_windows(local_time(at, tz_name), windows)
        ]
        if found:
            return min(found)
    return None

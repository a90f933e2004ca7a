"""The settings of the guardrails, read once and checked where they are set (mailer.settings
fails loudly on a bad value): quiet hours (MAILER_QUIET_HOURS), the frequency cap
(MAILER_FREQUENCY_CAP) and the approval threshold (MAILER_APPROVAL_ABOVE). Plain functions of a setting's text, without Django: settings.py uses them.
"""

from __future__ import annotations

import re
from datetime import time
from functools import lru_cache

HOURS_RE = re.compile(r"^\s*([01]?[0-9]|2[0-3]):([0-5][0-9])\s*-\s*([01]?[0-9]|2[0-3]):([0-5][0-9])\s*$")
OFF = ("", "off")


@lru_cache(maxsize=8)
def parse_hours(text: str) -> tuple[time, time] | None:
    """ "22:00-09:00" as (22:00, 09:00); empty or "off": None. Raises ValueError naming the form."""
    if text.strip().lower() in OFF:
        return None
    match = HOURS_RE.match(text)
    if not match:
        raise ValueError(f"give hours as HH:MM-HH:MM (e.g. 22:00-09:00), or leave it empty; not {text!r}")
    h1, m1, h2, m2 = map(int, match.groups())
    start, end = time(h1, m1), time(h2, m2)
    if start == end:
        raise ValueError(f"{text!r} is no span of hours: its start and end are the same")
    return start, end


PERIODS = ("day", "week")


@lru_cache(maxsize=8)
def parse_cap(text: str) -> dict[str, int]:
    """ "2/day,5/week" as {"day": 2, "week": 5}; empty or "off": {} (no cap). Raises ValueError."""
    if text.strip().lower() in OFF:
        return {}
    cap: dict[str, int] = {}
    for item in text.split(","):
        match = re.fullmatch(r"\s*([0-9]{1,6})\s*/\s*([a-z]+)\s*", item.lower())
        if not match or match.group(2) not in PERIODS:
            raise ValueError(f"give the cap as N/day, N/week or both (e.g. 2/day,5/week); not {text!r}")
        n, period = int(match.group(1)), match.group(2)
        if n < 1:
            raise ValueError(f"a cap of {n} would send nothing; leave it empty to turn it off")
        if period in cap:
            raise ValueError(f"{period} is given twice in {text!r}")
        cap[period] = n
    return cap


def parse_threshold(text: str) -> int | None:
    """ "10000" as 10000 (0: every mailing); empty or "off": None. Raises ValueError."""
    if text.strip().lower() in OFF:
        return None
    if not re.fullmatch(r"\s*[0-9]{1,12}\s*", text):
        raise ValueError(
            f"give a number of SMS, 0 or more (0: every mailing), or leave it empty; not {text!r}"
        )
    return int(text)

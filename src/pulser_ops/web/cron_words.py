"""A cron expression in plain words, for the common shapes only ("every day at 02:30").

A hint beside the expression, nothing more: what an expression means is the control plane's
to say (``pulser_ops.cron_next`` in SQL; the board shows its next times through
``schedules.preview``). An expression this module does not recognise gets no hint (``None``),
never a guess: it recognises plain numbers, ``*``, ``*/n``, and days of the week as numbers,
names, ranges or lists.
"""

from __future__ import annotations

import re

ALIASES = {
    "@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}  # fmt: skip
DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
SHORT = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")  # fmt: skip
NUMBER = re.compile(r"\d{1,2}")
EVERY = re.compile(r"\*/(\d{1,2})")


def _int(text: str, lo: int, hi: int) -> int | None:
    return int(text) if NUMBER.fullmatch(text) and lo <= int(text) <= hi else None


def _day(text: str) -> int | None:
    """A day of week as cron writes it: 0-7 (0 and 7 are Sunday) or sun..sat."""
    return SHORT.index(text) if text in SHORT else _int(text, 0, 7)


def _days(field: str) -> list[int] | None:
    """The days of week a list of days and ranges names (Sunday = 0), Monday first; or None."""
    out: set[int] = set()
    for part in field.split(","):
        lo, dash, hi = part.partition("-")
        a = _day(lo)
        b = _day(hi) if dash else a
        if a is None or b is None or a > b:
            return None
        out.update(d % 7 for d in range(a, b + 1))
    return sorted(out, key=lambda d: (d + 6) % 7)


def _which_days(days: list[int]) -> str:
    if days == [1, 2, 3, 4, 5]:
        return "on weekdays"
    if days == [6, 0]:
        return "on weekends"
    if len(days) == 7:
        return "every day"
    if len(days) == 1:
        return f"every {DAYS[days[0]]}"
    names = [DAYS[d] for d in days]
    return "on " + ", ".join(names[:-1]) + " and " + names[-1]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def describe(cron: str) -> str | None:
    """``cron`` in words ("every 15 minutes", "on weekdays at 09:00"), or None."""
    expr = ALIASES.get(cron.strip().lower(), cron.strip().lower())
    fields = expr.split()
    if len(fields) != 5:
        return None
    minute, hour, dom, month, dow = fields
    if [hour, dom, month, dow] == ["*"] * 4:
        if minute == "*":
            return "every minute"
        if m := EVERY.fullmatch(minute):
            n = int(m.group(1))
            # */7 is :00, :07 ... :56, then :00 again: "every 7 minutes" only when it divides 60
            return None if not n or 60 % n else "every minute" if n == 1 else f"every {n} minutes"
    mm = _int(minute, 0, 59)
    if mm is None or ([dom, month, dow] != ["*", "*", "*"] and hour == "*"):
        return None
    if hour == "*":
        return "every hour, on the hour" if mm == 0 else f"every hour at :{mm:02d}"
    if m := EVERY.fullmatch(hour):
        n = int(m.group(1))
        if not n or 24 % n or [dom, month, dow] != ["*", "*", "*"]:
            return None
        return f"every {n} hours at :{mm:02d}" if n > 1 else f"every hour at :{mm:02d}"
    hh = _int(hour, 0, 23)
    if hh is None:
        return None
    at = f"at {hh:02d}:{mm:02d}"
    if month == "*" and dom == "*":
        days = _days(dow) if dow != "*" else list(range(7))
        return None if not days else f"{_which_days(days)} {at}"
    if dow != "*":
        return None
    day = _int(dom, 1, 31)
    if day is None:
        return None
    if month == "*":
        return f"on the {_ordinal(day)} of every month {at}"
    mo = _int(month, 1, 12)
    return None if mo is None else f"every {day} {MONTHS[mo - 1]} {at}"

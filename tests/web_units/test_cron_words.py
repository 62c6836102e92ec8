"""The Schedules tab's pure pieces, table-driven: a cron expression in plain words (only the
shapes it is sure of; anything else gets no hint rather than a wrong one), and the countdown to
a schedule's next run and its wall-clock reading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pulser_ops.web.cron_words import describe
from pulser_ops.web.format import live_in, wall_clock

WORDS = [
    ("* * * * *", "every minute"),
    ("*/1 * * * *", "every minute"),
    ("*/15 * * * *", "every 15 minutes"),
    ("5 * * * *", "every hour at :05"),
    ("@hourly", "every hour, on the hour"),
    ("15 */2 * * *", "every 2 hours at :15"),
    ("30 2 * * *", "every day at 02:30"),
    ("@daily", "every day at 00:00"),
    ("@MIDNIGHT", "every day at 00:00"),
    ("0 9 * * 1-5", "on weekdays at 09:00"),
    ("0 9 * * MON-FRI", "on weekdays at 09:00"),
    ("0 10 * * 6,0", "on weekends at 10:00"),
    ("0 10 * * 0-6", "every day at 10:00"),
    ("0 0 * * 7", "every Sunday at 00:00"),
    ("@weekly", "every Sunday at 00:00"),
    ("0 9 * * mon,wed,fri", "on Monday, Wednesday and Friday at 09:00"),
    ("0 9 * * 5-7", "on Friday, Saturday and Sunday at 09:00"),
    ("0 0 1 * *", "on the 1st of every month at 00:00"),
    ("0 6 22 * *", "on the 22nd of every month at 06:00"),
    ("0 6 13 * *", "on the 13th of every month at 06:00"),
    ("@yearly", "every 1 January at 00:00"),
    ("  45 23 * * *  ", "every day at 23:45"),
]
NO_WORDS = [
    "*/7 * * * *",  # :00, :07 ... :56, then :00: not "every 7 minutes"
    "0 */5 * * *",  # the same with hours
    "*/0 * * * *", "61 * * * *", "0 24 * * *", "0 9,17 * * *", "0 9 1-5 * *",
    "0 9 1 * 1",  # day of month or day of week (Vixie's rule): no short words for that
    "0 9 * * */2", "0 9 * * 5-1", "0 9 * * sat-sun", "* 9 * * *", "5 * 1 * *", "* * *",
    "@every 5m", "", "0 9 * jan *",
]  # fmt: skip


@pytest.mark.parametrize(("cron", "words"), WORDS)
def test_common_shapes_read_as_words(cron: str, words: str) -> None:
    assert describe(cron) == words


@pytest.mark.parametrize("cron", NO_WORDS)
def test_anything_else_gets_no_hint(cron: str) -> None:
    assert describe(cron) is None


def test_a_time_to_come_counts_down_and_then_is_due() -> None:
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    soon = str(live_in(at, at - timedelta(minutes=4, seconds=7)))
    assert soon.startswith(f'<time data-until="{at.timestamp()}"') and ">in 4m 07s</time>" in soon
    assert 'title="2026-12-01 12:00:00 UTC"' in soon
    assert ">due now</time>" in str(live_in(at, at + timedelta(seconds=1)))
    assert str(live_in(None)) == "\u2013"


def test_a_time_reads_on_the_wall_clock_of_its_zone() -> None:
    at = datetime(2026, 7, 1, 0, 30, tzinfo=UTC)
    assert wall_clock(at) == "Wed 2026-07-01 00:30"
    assert wall_clock(at, "Europe/Paris") == "Wed 2026-07-01 02:30"  # summer time
    assert wall_clock(at, "America/New_York") == "Tue 2026-06-30 20:30"
    # zones only PostgreSQL knows, or no zone at all: nothing (the UTC time beside it stands)
    assert wall_clock(at, "PST") == wall_clock(at, "../etc/passwd") == wall_clock(None) == ""

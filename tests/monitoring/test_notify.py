"""Delivery of alert notices (pulser_ops.alerts.notify): routed per target, retried with
backoff, never blocking the caller, one target's trouble never delaying another's."""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import UTC, datetime, timedelta

from pulser_ops.alerts import Notifier, Target, render
from pulser_ops.alerts.rules import Delivery
from pulser_ops.models import AlertNotice


def _notice(notice: str = "firing", severity: str = "critical", rule: str = "stuck_runs",
            **kw: object) -> AlertNotice:  # fmt: skip
    return AlertNotice.model_validate({
        "alert_id": uuid.uuid4(), "notice": notice, "rule": rule, "subject": "A",
        "severity": severity, "summary": "2 stuck runs in lane A", "run_ids": [uuid.uuid4()],
        "started_at": datetime.now(UTC) - timedelta(minutes=3), "notifications": 1, **kw})  # fmt: skip


def test_a_notice_reads_well() -> None:
    n = _notice()
    title, body, kind = render(n, "https://ops.example.com/")
    assert title == "[FIRING] pulser-ops stuck_runs (A): critical"
    assert body.startswith("2 stuck runs in lane A\nFiring since ") and "(3 min)" in body
    assert body.endswith(f"https://ops.example.com/runs/{n.run_ids[0]}") and kind == "failure"
    done = _notice("resolved", resolved_at=datetime.now(UTC))
    title, body, kind = render(done)
    assert title.startswith("[RESOLVED]") and body.startswith("Resolved: ") and kind == "success"
    assert render(_notice("reminder", "warning"))[2] == "warning"


def test_targets_get_what_they_asked_for() -> None:
    got: dict[str, list[str]] = {"all": [], "pager": []}

    def send(url: str, title: str, body: str, kind: str) -> bool:
        got[url.split("://")[1]].append(title)
        return True

    n = Notifier([Target(url="json://all"),
                  Target(url="json://pager", severity="critical", notices=("firing",))],
                 send=send)  # fmt: skip
    assert n.submit([_notice(), _notice("reminder"), _notice("firing", "warning")]) == 4
    assert n.wait_idle(5)
    n.close()
    assert len(got["all"]) == 3 and got["pager"] == ["[FIRING] pulser-ops stuck_runs (A): critical"]
    assert n.outcomes() == {"sent": 4}


def test_a_failing_target_is_retried_with_backoff_and_never_blocks() -> None:
    tries: list[float] = []
    other: list[float] = []

    def send(url: str, title: str, body: str, kind: str) -> bool:
        if "down" in url:
            tries.append(time.monotonic())
            return len(tries) >= 4
        other.append(time.monotonic())
        return True

    n = Notifier([Target(url="json://down"), Target(url="json://fine")], send=send,
                 delivery=Delivery(attempts=5, backoff=0.1, max_backoff=0.3))  # fmt: skip
    started = time.monotonic()
    n.submit([_notice()])
    assert time.monotonic() - started < 0.05  # submit returned at once
    assert n.wait_idle(10)
    n.close()
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert len(tries) == 4 and gaps[0] >= 0.08 and gaps[1] >= 0.16 and gaps[2] >= 0.24
    assert other and other[0] < tries[-1]  # the healthy target did not wait for the other
    assert n.outcomes() == {"retried": 3, "sent": 2}


def test_a_target_that_never_answers_well_is_given_up_on() -> None:
    n = Notifier([Target(url="json://down")], send=lambda *a: False,
                 delivery=Delivery(attempts=3, backoff=0.05, max_backoff=0.05))  # fmt: skip
    n.submit([_notice()])
    assert n.wait_idle(5)
    n.close()
    assert n.outcomes() == {"retried": 2, "dropped": 1}


def test_a_send_that_raises_counts_as_a_failure() -> None:
    def send(url: str, title: str, body: str, kind: str) -> bool:
        raise RuntimeError("library bug")

    n = Notifier([Target(url="json://x")], send=send,
                 delivery=Delivery(attempts=2, backoff=0.01, max_backoff=0.01))  # fmt: skip
    n.submit([_notice()])
    assert n.wait_idle(5)
    n.close()
    assert n.outcomes() == {"retried": 1, "dropped": 1}

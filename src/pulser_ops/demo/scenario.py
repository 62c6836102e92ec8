"""What the demo enqueues, and the state each run must end in for the demo to pass.

Every template comes from ``supabase/seed.sql``; the demo only picks params and expectations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..models import LaneId, Run, RunStatus


@dataclass(frozen=True)
class Planned:
    label: str
    template: str
    params: dict[str, Any] = field(default_factory=dict)
    lane: LaneId | None = None
    expect: RunStatus = RunStatus.SUCCEEDED
    #: Smallest attempt count the run must show (e.g. 2 for a run that had to be retried).
    min_attempts: int = 1
    role: str = ""

    def check(self, run: Run) -> str | None:
        """Why the run did not end as planned, or None."""
        if run.status != self.expect:
            return f"ended {run.status}, expected {self.expect}"
        if run.attempt < self.min_attempts:
            return f"ended after {run.attempt} attempt(s), expected at least {self.min_attempts}"
        return None


def plan(http_url: str) -> list[Planned]:
    """The mix: shell and http steps in every lane, a retry, an exhausted run, a cancel, and
    a run whose worker the demo kills (``role='victim'``)."""
    return [
        Planned("victim", "slow-step", {"seconds": 5}, min_attempts=2, role="victim"),
        Planned("greet ada", "hello", {"name": "Ada"}),
        Planned("greet grace", "hello", {"name": "Grace"}, lane="B"),
        Planned("report", "build-report", {"items": 3}),
        Planned("report (big)", "build-report", {"items": 40}, lane="A"),
        Planned("http ok", "http-check", {"url": f"{http_url}/health"}),
        Planned("http ok (lane D)", "http-check", {"url": f"{http_url}/status"}, lane="D"),
        Planned("flaky", "flaky", {"succeed_on_attempt": 2}, min_attempts=2),
        Planned("always fails", "always-fails", expect=RunStatus.FAILED, min_attempts=2),
        Planned(
            "long task", "long-task", {"seconds": 600}, expect=RunStatus.CANCELLED, role="cancel"
        ),
    ]

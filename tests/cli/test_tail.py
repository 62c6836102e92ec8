"""``pulser-ops tail ID`` as a real process: live events, and an exit status telling the outcome.

The test plays the worker itself (claim, log, complete through the SDK) only after ``tail``
has printed its first line, so the events it checks arrived live, not in the initial read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import pulser_ops
from tests.cli.helpers import Cli, assert_one_error, tailing


def _env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {"PULSER_OPS_DATABASE_URL": db_url, "PULSER_OPS_HOME": str(tmp_path / "home")}


@pytest.mark.parametrize(("outcome", "exit_code"), [("succeeded", 0), ("failed", 1)])
def test_tail_follows_live_events_until_the_run_ends(
    client: pulser_ops.Client, db_url: str, tmp_path: Path, outcome: str, exit_code: int
) -> None:
    run = client.runs.create("greet", {"name": "live"})
    with tailing(_env(db_url, tmp_path), str(run.id)) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # tail is up: everything below happens while it watches
        assert f"run {run.id} queued" in first
        [claimed] = client.runs.claim("w-tail", lanes="B")
        client.events.log(run.id, "step one [not markup]")
        client.events.log(run.id, "step two", level="warn")
        kw = {"error": "it broke", "error_class": "Broken"} if outcome == "failed" else {}
        client.runs.complete(run.id, "w-tail", claimed.attempt, outcome, retryable=False, **kw)
        rest = proc.stdout.read()
        assert proc.wait(timeout=60) == exit_code
    lines = rest.splitlines()
    # events are gap-free; intermediate run states may be coalesced, so they are not checked
    claimed_at = next(i for i, ln in enumerate(lines) if "claimed by w-tail" in ln)
    one = next(i for i, ln in enumerate(lines) if "step one [not markup]" in ln)
    two = next(i for i, ln in enumerate(lines) if "step two" in ln)
    assert claimed_at < one < two
    assert any(f"run {run.id} {outcome}" in ln for ln in lines)
    if outcome == "failed":
        assert "Broken: it broke" in rest


def test_tail_of_a_finished_run_prints_its_events_and_exits(
    client: pulser_ops.Client, db_url: str, tmp_path: Path
) -> None:
    run = client.runs.create("greet", {"name": "gone"})
    client.events.log(run.id, "before cancel")
    client.runs.cancel(run.id, "not needed")
    with tailing(_env(db_url, tmp_path), str(run.id)) as proc:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err
    assert "before cancel" in out and "cancelled" in out


def test_tail_unknown_run(cli: Cli) -> None:
    assert_one_error(cli("tail", "00000000-0000-0000-0000-00000000abcd"), "not found")

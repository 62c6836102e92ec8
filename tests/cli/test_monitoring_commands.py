"""``pulser-ops stats`` (performance per template and step kind, as a table or JSON) and
``pulser-ops alerts --list`` / ``--check``."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

import pulser_ops
from pulser_ops.alerts import Rules
from tests.cli.helpers import Cli, assert_ok, assert_one_error, finish


def test_stats_prints_each_template_and_period(cli: Cli, client: pulser_ops.Client) -> None:
    for name in ("ada", "bob", "cy"):
        client.runs.create("greet", {"name": name})
    finish(client, "B")
    finish(client, "B", "failed", error="boom")
    out = assert_ok(cli("stats")).stdout
    lines = [ln.split() for ln in out.splitlines()]
    greet = [ln for ln in lines if ln and ln[0] == "greet"]
    assert [ln[1] for ln in greet] == ["hour", "day", "week"]
    assert all(ln[2:6] == ["2", "2.0" if ln[1] == "hour" else ln[3], "1", "50.0%"] for ln in greet)
    assert "Steps: no step rows in these periods" in out
    day = json.loads(assert_ok(cli("stats", "--period", "day", "--json")).stdout)
    [stats] = day
    assert stats["period"] == "day" and stats["exact"] is True
    assert stats["templates"][0]["template"] == "greet" and stats["templates"][0]["failed"] == 1
    assert_one_error(cli("stats", "--period", "month"), "--period", "hour, day or week")


def test_alerts_check_and_list(cli: Cli, client: pulser_ops.Client, db_url: str,
                               tmp_path: Path) -> None:  # fmt: skip
    rules = tmp_path / "alerts.yml"
    rules.write_text("notify:\n  - json://user:secret@hooks.example.com/x\n"
                     "rules:\n  stuck_runs: {after: 0}\n")  # fmt: skip
    shown = json.loads(assert_ok(cli("alerts", "--rules", str(rules), "--check")).stdout)
    assert shown["rules"]["stuck_runs"]["after"] == 0
    assert shown["notify"][0]["url"] == "json://hooks.example.com/…"  # no secret in the output
    client.runs.create("greet", {"name": "x"})
    [run] = client.runs.claim("w-gone", lanes="B")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update public.runs set lease_expires_at = now() - interval '1 minute'")
    client.alerts.evaluate(Rules.model_validate(
        {"rules": {"stuck_runs": {"after": 0}}}).sql())  # fmt: skip
    listed = assert_ok(cli("alerts", "--list")).stdout
    assert "firing" in listed and "stuck_runs" in listed and "1 stuck run in lane B" in listed
    assert str(run.id) not in listed

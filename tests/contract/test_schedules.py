"""Schedules over both transports: what is checked before a schedule is saved, who may write
and read them, and how ``enqueue_due`` fires them (once per due time, errors kept on the
schedule). The cron arithmetic itself is in supabase/tests/database/08_schedules.test.sql."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pulser_ops import (
    Client,
    Conflict,
    InvalidInput,
    InvalidParams,
    NotFound,
    PermissionDenied,
    Schedule,
)
from tests.contract.conftest import Caller, Env
from tests.contract.helpers import new_id, template

NIGHTLY = {"name": "nightly", "template": "hello", "cron": "30 2 * * *",
           "timezone": "Europe/Paris", "params": {"name": "night"}, "lane": "C", "priority": 7,
           "description": "the nightly hello"}  # fmt: skip


def _due(env: Env, name: str, ago: str = "1 minute") -> None:
    env.sql(f"update public.run_schedules set next_run_at = now() - interval '{ago}'"
            " where name = %s", (name,))  # fmt: skip


def test_a_schedule_is_saved_listed_and_previewed(env: Env, client: Client) -> None:
    template(client)
    saved = client.schedules.upsert(NIGHTLY)
    assert (saved.name, saved.template, saved.cron, saved.timezone, saved.lane, saved.priority,
            saved.enabled, saved.params) == (
        "nightly", "hello", "30 2 * * *", "Europe/Paris", "C", 7, True, {"name": "night"})  # fmt: skip
    assert saved.next_run_at is not None and saved.next_run_at > datetime.now(UTC)
    paris = saved.next_run_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (paris.hour, paris.minute) == (2, 30)
    assert client.schedules.list() == [saved] and client.schedules.get("nightly") == saved
    with pytest.raises(NotFound, match="schedule nope not found"):
        client.schedules.get("nope")
    preview = client.schedules.preview("30 2 * * *", "Europe/Paris", 3)
    times = [p.due_at for p in preview]
    assert times[0] == saved.next_run_at and [t - times[0] for t in times[1:]] == [
        timedelta(days=1), timedelta(days=2)]  # fmt: skip
    assert all(p.local_time.endswith(" 02:30") for p in preview)
    # the same timing again keeps its due time; a new timing counts from now
    same = client.schedules.upsert(Schedule(**{**NIGHTLY, "description": "renamed"}))
    assert same.next_run_at == saved.next_run_at and same.description == "renamed"
    hourly = client.schedules.upsert({**NIGHTLY, "cron": "@hourly"})
    assert hourly.next_run_at is not None and hourly.next_run_at - datetime.now(UTC) <= timedelta(hours=1)


@pytest.mark.parametrize(
    ("change", "error", "fragment"),
    [
        ({"cron": "61 * * * *"}, InvalidInput, 'the minute field allows 0 to 59 (got "61")'),
        ({"cron": "* * *"}, InvalidInput, "expected 5 fields"),
        ({"cron": "0 0 30 2 *"}, InvalidInput, "names no time that exists"),
        ({"timezone": "Mars/Olympus"}, InvalidInput, 'unknown time zone "Mars/Olympus"'),
        ({"template": "nope"}, NotFound, "unknown template nope"),
        ({"params": {"name": ""}}, InvalidParams, "invalid params for template hello"),
        ({"lane": "E"}, InvalidInput, "schedule.lane: must be one of A, B, C, D"),
        ({"priority": 1.5}, InvalidInput, "schedule.priority"),
        ({"name": "Bad Name"}, InvalidInput, "schedule.name"),
        ({"every": "day"}, InvalidInput, "schedule.every: unknown field"),
    ],
)
def test_a_schedule_that_cannot_work_is_refused_before_it_is_saved(
    env: Env, client: Client, change: dict[str, object], error: type[Exception], fragment: str
) -> None:
    template(client)
    with pytest.raises(error) as raised:
        client.schedules.upsert({**NIGHTLY, **change})
    assert fragment in str(raised.value)
    assert client.schedules.list() == []


def test_preview_names_what_it_cannot_read(env: Env, client: Client) -> None:
    with pytest.raises(InvalidInput, match='the hour field cannot be read at "x"'):
        client.schedules.preview("0 x * * *")
    with pytest.raises(InvalidInput, match="count: must be between 1 and 100"):
        client.schedules.preview("@daily", count=0)


def test_operators_read_schedules_and_only_admins_write_them(env: Env, client: Client) -> None:
    template(client)
    client.schedules.upsert(NIGHTLY)
    with env.client(Caller("operator", new_id())) as operator:
        assert [s.name for s in operator.schedules.list()] == ["nightly"]
        assert operator.schedules.get("nightly").template == "hello"
        assert len(operator.schedules.preview("@daily")) == 5
        for write in (lambda: operator.schedules.upsert({**NIGHTLY, "name": "mine"}),
                      lambda: operator.schedules.pause("nightly"),
                      lambda: operator.schedules.delete("nightly"),
                      lambda: operator.schedules.enqueue_due()):  # fmt: skip
            with pytest.raises(PermissionDenied):
                write()
    with env.client(Caller("admin", new_id())) as admin:
        assert admin.schedules.pause("nightly").enabled is False
        with pytest.raises(PermissionDenied):
            admin.schedules.enqueue_due()  # firing is the sweeper's (the service role)
    assert [(s.name, s.enabled) for s in client.schedules.list()] == [("nightly", False)]


def test_enqueue_due_fires_each_due_time_once_with_the_schedules_run(
    env: Env, client: Client
) -> None:
    template(client)
    client.schedules.upsert(NIGHTLY)
    assert client.schedules.enqueue_due() == []
    _due(env, "nightly", "3 days")  # no sweeper for three days: one run, not three
    [fire] = client.schedules.enqueue_due()
    assert fire.schedule == "nightly" and fire.error is None and fire.run_id is not None
    run = client.runs.get(fire.run_id)
    assert (run.template, run.params, run.lane, run.priority, run.status) == (
        "hello", {"name": "night", "count": 1}, "C", 7, "queued")  # the schema's default too
    after = client.schedules.list()[0]
    assert after.last_run_id == run.id and after.last_run_at == fire.due_at
    assert after.next_run_at is not None and after.next_run_at > datetime.now(UTC)
    assert client.schedules.enqueue_due() == []
    # the same due time again (a lost reply, retried): the same run
    env.sql("update public.run_schedules set next_run_at = %s", (fire.due_at,))
    [again] = client.schedules.enqueue_due()
    assert again.run_id == run.id and len(client.runs.list()) == 1


def test_a_due_time_that_cannot_enqueue_keeps_its_error_and_moves_on(
    env: Env, client: Client
) -> None:
    template(client)
    client.schedules.upsert(NIGHTLY)
    # the template's schema changes so that the schedule's params no longer fit
    template(client, params_schema={"type": "object", "required": ["team"],
                                    "properties": {"team": {"type": "string"}}})  # fmt: skip
    _due(env, "nightly")
    [fire] = client.schedules.enqueue_due()
    assert fire.run_id is None and fire.error is not None and "invalid params" in fire.error
    [after] = client.schedules.list()
    assert after.last_error == fire.error and after.next_run_at is not None
    assert after.next_run_at > datetime.now(UTC) and client.runs.list() == []


def test_paused_schedules_do_not_fire_and_resume_from_now(env: Env, client: Client) -> None:
    template(client)
    client.schedules.upsert({**NIGHTLY, "cron": "* * * * *"})
    client.schedules.pause("nightly")
    _due(env, "nightly", "2 hours")
    assert client.schedules.enqueue_due() == []
    resumed = client.schedules.resume("nightly")
    assert resumed.enabled and resumed.next_run_at is not None
    assert resumed.next_run_at > datetime.now(UTC)
    with pytest.raises(NotFound):
        client.schedules.pause("no-such-schedule")


def test_a_template_with_schedules_is_not_deleted(env: Env, client: Client) -> None:
    template(client)
    client.schedules.upsert(NIGHTLY)
    with pytest.raises(Conflict, match="has schedules \\(nightly\\)"):
        client.templates.delete("hello")
    assert client.schedules.delete("nightly").name == "nightly"
    assert client.schedules.list() == []
    assert client.templates.delete("hello").name == "hello"
    with pytest.raises(NotFound):
        client.schedules.delete("nightly")


def test_upsert_many_saves_all_or_none(env: Env, client: Client) -> None:
    template(client)
    saved = client.schedules.upsert_many([NIGHTLY, {**NIGHTLY, "name": "hourly", "cron": "@hourly"}])
    assert [s.name for s in saved] == ["nightly", "hourly"]
    with pytest.raises(InvalidInput, match=r"schedules\[1\] \(broken\): cron: the hour field"):
        client.schedules.upsert_many([{**NIGHTLY, "name": "third"},
                                      {**NIGHTLY, "name": "broken", "cron": "0 25 * * *"}])
    assert [s.name for s in client.schedules.list()] == ["hourly", "nightly"]


"""How the SDK copes with what a real Supabase project does and a lenient stand-in did not: a
Realtime feed that is ready after the join, error payloads, tokens that expire on open channels,
a gateway that refuses keys, lock and statement timeouts, a row cap lower than configured.

Runs under the ``supabase`` parameter only; each test turns one of the stand-in's knobs (reset
afterwards: the stand-in is shared by the module).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

import pulser_ops
from pulser_ops import (
    Client,
    ConfigurationError,
    LockTimeout,
    PermissionDenied,
    SupabaseSession,
    Timeout,
)
from pulser_ops.subscribe import subscribe
from pulser_ops.transport.base import Hint, Record
from pulser_ops.transport.supabase import _on_change
from tests.contract.conftest import Caller, Env
from tests.contract.helpers import new_id, template
from tests.contract.subs import Collector, run_versions

pytestmark = pytest.mark.parametrize("env", ["supabase"], indirect=True)

#: Longer than any test: changes must come through the feed (or a catch-up), not the watchdog.
NO_WATCHDOG = 3600.0


@pytest.fixture
def sb(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The stand-in, its knobs restored after the test."""
    assert env.sb is not None
    app = env.sb.app
    for obj, attr in [(app.realtime, "ready_delay"), (app.realtime, "fail_next_subscribes"),
                      (app.realtime.changes, "max_record_bytes"), (app.rest, "max_rows"),
                      (app.gotrue, "access_ttl_seconds")]:
        monkeypatch.setattr(obj, attr, getattr(obj, attr))
    monkeypatch.setattr(app.rest, "timeouts", dict(app.rest.timeouts))
    yield env.sb


async def _wait(cond: Any, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, f"never saw {what}"
        await asyncio.sleep(0.02)


# --- item 3: Realtime is ready after the join ----------------------------------------------


async def _subscribe_then_create(env: Env, client: Client, sb: Any, joins: int) -> None:
    """Subscribe, wait until the stand-in counted ``joins`` more joins, then create a run: it
    must reach the subscriber (by the feed, or by a catch-up), never by the watchdog."""
    template(client)
    before = sb.realtime_joins
    async with env.aclient() as ac:
        got = Collector(subscribe(ac, runs=True, watchdog_seconds=NO_WATCHDOG))
        try:
            await _wait(lambda: sb.realtime_joins >= before + joins, f"{joins} join(s)")
            run = await asyncio.to_thread(client.runs.create, "hello", {"name": "now"})
            await got.until(lambda xs: run_versions(xs, run.id) != [], "the new run")
        finally:
            await got.close()


async def test_a_change_between_join_and_ready_is_not_lost(
    env: Env, client: Client, sb: Any
) -> None:
    """The real server acknowledges the join, and only later (1-3 s) starts the change feed and
    says "Subscribed to PostgreSQL". A run created in between is never pushed; the SDK catches
    up again when the ready message arrives."""
    sb.app.realtime.ready_delay = 1.5
    await _subscribe_then_create(env, client, sb, joins=1)


async def test_a_failed_postgres_subscription_reconnects(
    env: Env, client: Client, sb: Any
) -> None:
    """A system ``status: error`` (the server could not subscribe to PostgreSQL) reaches
    realtime-py as CHANNEL_ERROR: the feed ends and the subscription rejoins."""
    sb.app.realtime.fail_next_subscribes = 1
    await _subscribe_then_create(env, client, sb, joins=2)


# --- item 4: Realtime error payloads --------------------------------------------------------


async def test_a_change_too_large_for_realtime_is_read_back_whole(
    env: Env, client: Client, sb: Any
) -> None:
    """Over Realtime's payload limit, a change arrives with every value over 64 bytes left out
    and ``errors = ['Error 413: Payload Too Large']``: the SDK reads the run back instead of
    yielding one with empty params and result."""
    template(client)
    sb.app.realtime.changes.max_record_bytes = 4096
    big = "x" * 3000
    async with env.aclient() as ac:
        got = Collector(subscribe(ac, runs=True, watchdog_seconds=NO_WATCHDOG))
        try:
            run = await asyncio.to_thread(client.runs.create, "hello", {"name": big})
            await got.until(lambda xs: run_versions(xs, run.id) != [], "the big run")
        finally:
            await got.close()
    [change] = [c for c in got.items if c.run is not None and c.run.id == run.id]
    assert change.run is not None and change.run.params == {"name": big, "count": 1}


def test_error_payloads_become_re_reads_or_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    """What reaches the feed: a 413 payload still names its row (re-read it), a 401 payload
    names none (skip it, with a log line), never a record that is not a whole row."""
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    callback = _on_change(inbox)
    rid = new_id()
    callback({"ids": [1], "data": {
        "schema": "public", "table": "runs", "type": "UPDATE", "commit_timestamp": "x",
        "columns": [], "record": {"id": rid, "status": "running"}, "old_record": {"id": rid},
        "errors": ["Error 413: Payload Too Large"]}})
    with caplog.at_level(logging.WARNING, logger="pulser_ops.supabase"):
        callback({"ids": [1], "data": {
            "schema": "public", "table": "runs", "type": "INSERT", "commit_timestamp": None,
            "columns": [], "record": {}, "errors": ["Error 401: Unauthorized"]}})
    assert inbox.get_nowait() == Hint("runs", (rid,))
    assert inbox.empty()
    assert "Error 401: Unauthorized" in caplog.text


async def test_a_partial_run_record_is_read_back(env: Env, client: Client) -> None:
    """Whatever else trims a pushed row, ``subscribe`` never fails validating it: it reads the
    run back by id."""
    from pulser_ops.subscribe import _resolve, _State

    template(client)
    run = client.runs.create("hello", {"name": "whole"})
    async with env.aclient() as ac:
        st = _State(True, None, None, False, datetime.now(UTC) - timedelta(hours=1))
        changes = await _resolve(ac, st, Record("runs", "UPDATE", {"id": str(run.id)}))
    assert [c.run for c in changes] == [run]


# --- item 6: tokens expire on open channels --------------------------------------------------


async def test_an_expired_token_ends_the_subscription_with_permission_denied(
    env: Env, client: Client, sb: Any
) -> None:
    """Realtime closes a channel when its token expires; with a fixed token every rejoin is
    refused, so the subscription ends with PermissionDenied instead of retrying forever."""
    template(client)
    token = sb.user_token(new_id(), ttl_seconds=3)
    async with await pulser_ops.aconnect(supabase_url=sb.url, supabase_key=sb.anon_key,
                                         access_token=token) as ac:
        changes = subscribe(ac, runs=True, watchdog_seconds=NO_WATCHDOG)
        with pytest.raises(PermissionDenied, match="Token has expired"):
            async with asyncio.timeout(60):
                async for _ in changes:
                    pass
    assert sb.app.realtime.expired_channels >= 1


@pytest.mark.slow
async def test_a_token_provider_keeps_a_subscription_alive_past_expiry(
    env: Env, client: Client, sb: Any
) -> None:
    template(client)
    me = Caller("operator", new_id())
    minted: list[str] = []

    def provider() -> str:
        minted.append(sb.user_token(me.sub, ttl_seconds=4))
        return minted[-1]

    with env.client(me) as mine:
        async with await pulser_ops.aconnect(supabase_url=sb.url, supabase_key=sb.anon_key,
                                             access_token=provider) as ac:
            joins, expired = sb.realtime_joins, sb.app.realtime.expired_channels
            got = Collector(subscribe(ac, runs=True, watchdog_seconds=NO_WATCHDOG))
            try:
                first = await asyncio.to_thread(mine.runs.create, "hello", {"name": "1"})
                await got.until(lambda xs: run_versions(xs, first.id) != [], "the first run")
                await asyncio.sleep(9)  # two token lifetimes
                later = await ac.runs.create("hello", {"name": "2"})  # HTTP, a fresh token too
                await got.until(lambda xs: run_versions(xs, later.id) != [], "the later run")
            finally:
                await got.close()
    assert len(minted) >= 3
    assert sb.realtime_joins == joins + 1  # never rejoined: the channel was re-authenticated
    assert sb.app.realtime.expired_channels == expired


def test_a_supabase_session_refreshes_itself(env: Env, client: Client, sb: Any) -> None:
    """``SupabaseSession``: sign in with Supabase Auth, then every call carries a valid token,
    refreshed (the refresh token rotating) when the access token runs out."""
    sb.app.gotrue.access_ttl_seconds = 2
    sb.add_user("op@example.com", "op-pw")
    session = SupabaseSession.sign_in(sb.url, sb.anon_key, "op@example.com", "op-pw")
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.anon_key,
                            access_token=session) as op:
        op.sessions.create("one")
        time.sleep(2.5)
        op.sessions.create("two")
    assert session.refreshes >= 1
    titles = {t for (t,) in env.sql("select title from public.sessions")}
    assert titles == {"one", "two"}


# --- item 5: the gateway refuses a key ---------------------------------------------------------


def test_an_unknown_api_key_is_a_configuration_error_sent_once(
    env: Env, sb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPABASE_URL", sb.url)
    monkeypatch.setenv("SUPABASE_SECRET_KEY", "sb_secret_not-this-projects-key")
    refused = sb.app.gateway.refused
    with pulser_ops.connect() as c:
        with pytest.raises(ConfigurationError) as err:
            c.runs.list()
        assert "Invalid API key" in str(err.value) and "SUPABASE_SECRET_KEY" in str(err.value)
        assert sb.app.gateway.refused == refused + 1  # not retried as a network failure
        with pytest.raises(ConfigurationError):
            c.artifacts.download(new_id(), "x.txt")  # Storage goes through the gateway too


async def test_realtime_with_an_unknown_key_is_a_configuration_error(env: Env, sb: Any) -> None:
    async with await pulser_ops.aconnect(supabase_url=sb.url,
                                         supabase_key="sb_publishable_wrong") as ac:
        with pytest.raises(ConfigurationError, match="Invalid API key"):
            async with ac.transport.feed(frozenset({"runs"})):
                pass


# --- item 7: lock and statement timeouts ------------------------------------------------------


@pytest.fixture
def locked_run(env: Env, client: Client) -> Iterator[tuple[Any, threading.Event]]:
    """A queued run whose row another session holds locked until the event is set."""
    template(client)
    run = client.runs.create("hello", {"name": "locked"})
    release, held = threading.Event(), threading.Event()

    def hold() -> None:
        with psycopg.connect(env.db_url) as conn:
            conn.execute("select 1 from public.runs where id = %s for update", (run.id,))
            held.set()
            release.wait(60)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert held.wait(30)
    try:
        yield run, release
    finally:
        release.set()
        thread.join(30)


def test_a_lock_timeout_is_typed_and_sent_again(
    env: Env, client: Client, sb: Any, locked_run: tuple[Any, threading.Event]
) -> None:
    """55P03 is ``LockTimeout``: the server rolled the statement back, so even a call that is not
    safe to repeat after a lost reply (cancel) is sent again, and succeeds once the lock goes."""
    run, release = locked_run
    sb.app.rest.timeouts["service_role"] = ("8s", "200ms")
    threading.Timer(0.3, release.set).start()
    cancelled = client.runs.cancel(run.id, "through a lock")
    assert cancelled.status == "cancelled"


def test_a_lock_held_too_long_is_a_lock_timeout(
    env: Env, client: Client, sb: Any, locked_run: tuple[Any, threading.Event]
) -> None:
    run, _ = locked_run
    sb.app.rest.timeouts["service_role"] = ("8s", "50ms")
    with pytest.raises(LockTimeout) as err:
        client.runs.cancel(run.id)
    assert (err.value.code, err.value.sqlstate) == ("lock_timeout", "55P03")


def test_a_statement_timeout_is_a_timeout(
    env: Env, client: Client, sb: Any, locked_run: tuple[Any, threading.Event]
) -> None:
    run, _ = locked_run
    sb.app.rest.timeouts["service_role"] = ("100ms", "8s")
    with pytest.raises(Timeout) as err:
        client.runs.cancel(run.id)
    assert err.value.sqlstate == "57014" and not isinstance(err.value, LockTimeout)


# --- item 1, the project's cap lower than configured -----------------------------------------


def test_a_lower_project_cap_is_noticed(env: Env, client: Client, sb: Any) -> None:
    """PULSER_OPS_MAX_ROWS says 1000 but the project returns 300: a write that was cut says
    which setting to fix, the lower cap is kept for the next calls, and reads continue where a
    cut reply stopped."""
    template(client)
    sb.app.rest.max_rows = 300
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.service_key) as c:
        with pytest.raises(ConfigurationError, match="PULSER_OPS_MAX_ROWS=300"):
            c.runs.create_many(
                [{"template": "hello", "params": {"name": str(i)}} for i in range(400)])
        assert env.sql("select count(*) from public.runs") == [(400,)]  # done, not reported
        assert c.transport.max_rows == 300  # learnt: later writes go in parts of 300
        runs = c.runs.create_many(
            [{"template": "hello", "params": {"name": str(i)}} for i in range(400)])
        assert len(runs) == 400
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.service_key) as c:
        assert len(c.runs.get_many([r.id for r in runs])) == 400
        assert len(c.runs.list(limit=1000)) == 800
        assert len(c.runs.search(limit=1000)) == 800
        assert len(c.runs.stuck(limit=1000)) == 0


def test_claimed_runs_are_all_reported(env: Env, client: Client, sb: Any) -> None:
    """A claim cut by the cap would leave runs claimed that no worker knows of: claims are sent
    in parts at or under the cap."""
    template(client)
    sb.app.rest.max_rows = 200
    with pulser_ops.connect(supabase_url=sb.url, supabase_key=sb.service_key, max_rows=200) as c:
        c.runs.create_many([{"template": "hello", "params": {"name": str(i)}} for i in range(500)])
        assert len(c.runs.claim("w1", limit=500)) == 500
    assert env.sql("select count(*) from public.runs where status = 'running'") == [(500,)]

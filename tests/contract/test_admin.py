"""Templates, sessions, lanes and workers over both transports, sync and async."""

from __future__ import annotations

from pulser_ops import Client, Template
from tests.contract.conftest import Caller, Env
from tests.contract.helpers import SCHEMA, claimed, new_id, template


def test_templates_upsert_list_get(env: Env, client: Client) -> None:
    created = template(client)
    assert (created.name, created.params_schema, created.lease_seconds) == ("hello", SCHEMA, 30)
    assert created.steps == [{"kind": "shell", "name": "greet", "run": "echo hi"}]
    updated = client.templates.upsert(created.model_copy(update={"description": "v2",
                                                                  "default_lane": "C"}))
    assert (updated.description, updated.default_lane) == ("v2", "C")
    assert updated.created_at == created.created_at
    other = client.templates.upsert(Template(name="bare"))
    assert (other.max_attempts, other.default_lane, other.steps) == (3, "A", [])
    assert [t.name for t in client.templates.list()] == ["bare", "hello"]
    assert client.templates.get("hello") == updated
    assert env.sql("select name, description, default_lane from public.run_templates"
                   " order by name") == [("bare", "", "A"), ("hello", "v2", "C")]


def test_templates_upsert_many_applies_all_in_one_call(env: Env, client: Client) -> None:
    template(client)
    applied = client.templates.upsert_many(
        [{"name": "hello", "description": "v3"}, Template(name="second", default_lane="D")])
    assert [(t.name, t.description, t.default_lane) for t in applied] == [
        ("hello", "v3", "A"), ("second", "", "D")]
    assert env.sql("select name, description from public.run_templates order by name") == [
        ("hello", "v3"), ("second", "")]


def test_admin_user_may_change_templates_and_lanes(env: Env, client: Client) -> None:
    with env.client(Caller("admin", new_id())) as admin:
        assert template(admin, "by-admin").name == "by-admin"
        assert admin.lanes.pause("D").paused is True
    assert env.sql("select name from public.run_templates") == [("by-admin",)]
    assert env.sql("select paused from public.lanes where id = 'D'") == [(True,)]


def test_sessions_create_and_list(env: Env, client: Client) -> None:
    sub = new_id()
    with env.client(Caller("operator", sub)) as op:
        mine = op.sessions.create("my session", {"ticket": 7})
        assert (mine.title, mine.metadata, str(mine.owner_id)) == ("my session", {"ticket": 7}, sub)
        assert op.sessions.list() == [mine]
        template(client)
        run = op.runs.create("hello", {"name": "x"}, session_id=mine.id)
        assert (run.session_id, str(run.owner_id)) == (mine.id, sub)
    service_made = client.sessions.create()
    assert service_made.owner_id is None
    assert {s.id for s in client.sessions.list()} == {mine.id, service_made.id}
    assert env.sql("select count(*) from public.sessions") == [(2,)]


def test_lanes_pause_resume_concurrency_stats(env: Env, client: Client) -> None:
    assert [lane.id for lane in client.lanes.list()] == ["A", "B", "C", "D"]
    template(client)
    client.runs.create("hello", {"name": "x"}, lane="B")
    assert client.lanes.pause("B").paused is True
    assert client.runs.claim("w1", lanes=["B"]) == []
    assert client.lanes.resume("B").paused is False
    assert client.lanes.set_concurrency("B", 1).max_running == 1
    client.runs.create("hello", {"name": "y"}, lane="B")
    assert len(client.runs.claim("w1", lanes=["B"], limit=5)) == 1  # capped at one running
    stats = {(s.lane, s.status): s.runs for s in client.lanes.stats()}
    assert stats[("B", "running")] == 1 and stats[("B", "queued")] == 1
    assert client.lanes.set_concurrency("B", None).max_running is None
    assert env.sql("select paused, max_running from public.lanes where id = 'B'") == [
        (False, None)]


def test_workers_register_list_health_deregister(env: Env, client: Client) -> None:
    w = client.workers.register("w1", host="h", pid=42, lanes=["A", "B"], version="1.0",
                                concurrency=2, metadata={"zone": "x"})
    assert (w.id, w.host, w.pid, w.lanes, w.status, w.metadata) == (
        "w1", "h", 42, ["A", "B"], "active", {"zone": "x"})
    assert [x.id for x in client.workers.list()] == ["w1"]
    template(client)
    claimed(client, worker="w1")
    [health] = client.workers.health()
    assert (health.id, health.running, health.stale) == ("w1", 1, False)
    gone = client.workers.deregister("w1")
    assert gone.status == "stopped"
    assert env.sql("select status from public.workers") == [("stopped",)]


async def test_async_admin_namespaces(env: Env, client: Client) -> None:
    async with env.aclient() as ac:
        t = await ac.templates.upsert({"name": "async-t", "params_schema": {"type": "object"}})
        assert [x.name for x in await ac.templates.list()] == ["async-t"]
        assert await ac.templates.get("async-t") == t
        s = await ac.sessions.create("s")
        assert await ac.sessions.list() == [s]
        assert (await ac.lanes.pause("C")).paused
        assert (await ac.lanes.resume("C")).paused is False
        assert (await ac.lanes.set_concurrency("C", 3)).max_running == 3
        assert (await ac.lanes.set_concurrency("C", None)).max_running is None
        assert [lane.id for lane in await ac.lanes.list()] == ["A", "B", "C", "D"]
        assert {(s.lane, s.status, s.runs) for s in await ac.lanes.stats()} == {
            (lane, status, 0) for lane in "ABCD" for status in ("queued", "running")}
        w = await ac.workers.register("aw", lanes=["C"], concurrency=1)
        assert [x.id for x in await ac.workers.list()] == [w.id]
        assert [h.id for h in await ac.workers.health()] == ["aw"]
        assert (await ac.workers.deregister("aw", status="draining")).status == "draining"
    assert env.sql("select status from public.workers") == [("draining",)]


async def test_async_run_life_cycle(env: Env, client: Client) -> None:
    template(client)
    async with env.aclient() as ac:
        run = await ac.runs.create("hello", {"name": "a"}, lane="D")
        batch = await ac.runs.create_many([{"template": "hello", "params": {"name": "b"},
                                            "lane": "D"}])
        [got] = await ac.runs.claim("aw", lanes="D", limit=1)
        assert got.id == run.id
        assert (await ac.runs.heartbeat(run.id, "aw", 1)).cancel_requested is False
        assert [i.ok for i in await ac.runs.heartbeat_many("aw", [(run.id, 1)])] == [True]
        await ac.runs.record_step(run.id, "aw", 1, 0, "s", "python", "succeeded")
        assert [s.kind for s in await ac.runs.steps(run.id)] == ["python"]
        assert (await ac.runs.release(run.id, "aw", 1)).status == "queued"
        [again] = await ac.runs.claim("aw", lanes=["D"])
        done = await ac.runs.complete(again.id, "aw", again.attempt, "succeeded", result=1)
        assert (done.status, done.result) == ("succeeded", 1)
        assert (await ac.runs.get(run.id)).status == "succeeded"
        assert {r.id for r in await ac.runs.get_many([run.id, batch[0].id])} == {
            run.id, batch[0].id}
        assert [r.id for r in await ac.runs.list(status="queued")] == [batch[0].id]
        assert (await ac.runs.cancel(batch[0].id)).status == "cancelled"
        assert await ac.runs.stuck() == []
        assert await ac.runs.sweep() == []
        assert await ac.runs.delete([run.id]) == 1
        assert await ac.runs.prune(0) == 1
    assert env.sql("select count(*) from public.runs") == [(0,)]

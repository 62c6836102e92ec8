"""Monitoring's SQL over both transports, through the client: ``monitoring.fleet``
(fleet_metrics), ``monitoring.performance`` (performance_stats), ``alerts.evaluate`` /
``alerts.list`` (evaluate_alerts, list_alerts) and the lane of a swept run. Same values, same
errors, same RLS on either transport."""

from __future__ import annotations

import time
import uuid

import pytest

from pulser_ops import Client
from pulser_ops.alerts import Rules
from tests.contract.conftest import Caller, Env
from tests.contract.helpers import claimed, template


def _expire(env: Env, run_id: object, ago: str = "5 minutes") -> None:
    env.sql(
        "update public.runs set lease_expires_at = now() - %s::interval where id = %s",
        (ago, str(run_id)),
    )


def _scenario(env: Env, client: Client) -> None:
    """Lane A: 2 queued, 1 running (stuck), 1 succeeded, 1 failed; lane B: 3 queued."""
    template(client, max_attempts=1)
    ok = claimed(client, "w1")
    client.runs.complete(ok.id, "w1", 1, "succeeded")
    bad = claimed(client, "w1")
    client.runs.complete(bad.id, "w1", 1, "failed", error="boom")
    stuck = claimed(client, "w1")
    _expire(env, stuck.id)
    client.runs.create_many([{"template": "hello", "params": {"name": "a"}} for _ in range(2)])
    client.runs.create_many(
        [{"template": "hello", "params": {"name": "b"}, "lane": "B"} for _ in range(3)]
    )
    client.workers.register("w1", lanes=["A", "B"], concurrency=4,
                            metadata={"heartbeat_seconds": 2})  # fmt: skip
    client.workers.register("w2", lanes=["C"], concurrency=2)
    env.sql("update public.workers set last_seen_at = now() - interval '20 seconds' where id = 'w1'")


def test_fleet_metrics_counts_queues_runs_and_workers(env: Env, client: Client) -> None:
    _scenario(env, client)
    fleet = client.monitoring.fleet()
    assert fleet.exact and fleet.finished_exact
    lanes = {q.lane: q for q in fleet.lanes}
    assert (lanes["A"].queued, lanes["B"].queued, lanes["C"].queued) == (2, 3, 0)
    assert lanes["A"].templates == {"hello": 2} and lanes["C"].templates == {}
    assert lanes["A"].oldest_age_seconds is not None and lanes["A"].oldest_run_id is not None
    assert lanes["C"].oldest_age_seconds is None
    [running] = fleet.running
    assert (running.lane, running.template, running.runs, running.stuck) == ("A", "hello", 1, 1)
    finished = {(f.lane, f.status): f.runs for f in fleet.finished}
    assert finished == {("A", "succeeded"): 1, ("A", "failed"): 1}
    workers = {w.id: w for w in fleet.workers}
    # w1: 20 s unseen with a 2 s interval is stale at 3 beats; w2 (default 10 s) is alive
    assert workers["w1"].stale and not workers["w2"].stale
    assert (workers["w1"].running, workers["w1"].concurrency) == (1, 4)
    assert workers["w1"].heartbeat_seconds == 2 and workers["w2"].heartbeat_seconds == 10


def test_fleet_metrics_estimates_above_the_caps(env: Env, client: Client) -> None:
    _scenario(env, client)
    fleet = client.monitoring.fleet(exact_limit=1)
    lanes = {q.lane: q for q in fleet.lanes}
    assert not fleet.exact and not lanes["B"].exact and lanes["B"].queued >= 2
    assert lanes["C"].exact and lanes["C"].queued == 0
    assert sum(lanes["B"].templates.values()) >= 2  # the split of the runs it read, scaled
    assert not fleet.finished_exact
    assert fleet.finished_sample_percent is not None and fleet.finished_sample_percent < 100


def test_a_deep_lane_is_counted_exactly_but_read_only_up_to_the_budget(
    env: Env, client: Client
) -> None:
    """1,500 queued runs (over the 1,000 rows a scrape reads per lane, under exact_limit): the
    depth is the exact count, the oldest ready run is the first enqueued, and the per-template
    split comes from the first 1,000 runs in claim order, scaled to the depth."""
    template(client)
    template(client, "other")
    # The first 1,000 in claim order alternate; the last 500 are all "other" (exact split:
    # 500 hello, 1,000 other), which a scrape does not read.
    batch = [{"template": "hello" if i % 2 and i < 1000 else "other", "params": {"name": str(i)}}
             for i in range(1500)]  # fmt: skip
    first = client.runs.create_many(batch)[0]
    [budget] = env.sql("select pulser_ops.metrics_read_budget()")
    assert budget == (1000,)
    lane = {q.lane: q for q in client.monitoring.fleet().lanes}["A"]
    assert lane.exact and lane.queued == 1500
    assert lane.oldest_run_id == first.id
    assert lane.templates == {"hello": 750, "other": 750}


def test_an_operator_sees_the_numbers_of_their_own_runs(env: Env, client: Client) -> None:
    template(client)
    me = Caller("operator", str(uuid.uuid4()))
    with env.client(me) as mine:
        mine.runs.create("hello", {"name": "mine"}, lane="C")
        client.runs.create_many([{"template": "hello", "params": {"name": "x"}, "lane": "C"}] * 4)
        lanes = {q.lane: q for q in mine.monitoring.fleet().lanes}
        assert lanes["C"].queued == 1
        assert {q.lane: q for q in client.monitoring.fleet().lanes}["C"].queued == 5


def test_performance_of_a_window_with_no_finished_run(client: Client) -> None:
    """A fresh project: the total counts zero runs (its sum over no rows was null, and
    ``pulser-ops stats`` could not read the reply)."""
    template(client)
    client.runs.create("hello", {"name": "still queued"})
    stats = client.monitoring.performance("hour")
    assert stats.templates == [] and stats.steps == []
    assert (stats.total.runs, stats.total.per_hour, sum(stats.total.series)) == (0, 0, 0)


def test_performance_percentiles_per_template_and_step_kind(env: Env, client: Client) -> None:
    template(client, max_attempts=1)
    template(client, "other", max_attempts=1)
    for waited, took in ((10, 4), (20, 6), (30, 8)):
        run = claimed(client, "w1")
        env.sql(
            "update public.runs set available_at = now() - make_interval(secs => %s),"
            " claimed_at = now() - make_interval(secs => %s) where id = %s",
            (waited + took, took, str(run.id)),
        )
        client.runs.complete_many("w1", [{
            "run_id": run.id, "attempt": 1, "status": "succeeded",
            "steps": [{"idx": 0, "name": "greet", "kind": "shell", "status": "succeeded",
                       "started_at": "2000-01-01T00:00:00Z"}]}])  # fmt: skip
        env.sql(
            "update public.run_steps set started_at = finished_at - make_interval(secs => %s)"
            " where run_id = %s",
            (took / 2, str(run.id)),
        )
    client.runs.create("other", {"name": "o"}, lane="B")
    [other] = client.runs.claim("w1", lanes=["B"])
    client.runs.complete(other.id, "w1", 1, "failed", error="x")
    queued_only = client.runs.create("other", {"name": "never ran"})
    client.runs.cancel(queued_only.id)

    day = client.monitoring.performance("day")
    assert day.period == "day" and day.exact and day.buckets == 48 and day.bucket_seconds == 1800
    per = {t.template: t for t in day.templates}
    hello = per["hello"]
    assert (hello.runs, hello.succeeded, hello.failed) == (3, 3, 0)
    assert hello.wait.p50 == pytest.approx(20, abs=0.5)
    assert hello.duration.p50 == pytest.approx(6, abs=0.5)
    assert hello.duration.p99 == pytest.approx(7.96, abs=0.5)
    assert sum(hello.series) == 3 and len(hello.series) == 48 and hello.series[-1] == 3
    assert (per["other"].runs, per["other"].failed, per["other"].cancelled) == (2, 1, 1)
    # the run cancelled while queued was never claimed: no wait, no duration of its own
    assert per["other"].wait.p50 == per["other"].wait.p99
    assert day.total.runs == 5 and sum(day.total.failures) == 1
    [shell] = day.steps
    assert shell.kind == "shell" and shell.steps == 3
    assert shell.duration.p50 == pytest.approx(3, abs=0.5)
    assert client.monitoring.performance("hour").buckets == 60
    assert client.monitoring.performance("week").buckets == 42


def test_performance_samples_a_big_period(env: Env, client: Client) -> None:
    template(client)
    env.sql(
        "insert into public.runs (template, lane, status, attempt, max_attempts, lease_seconds,"
        " available_at, claimed_at, worker_id, finished_at)"
        " select 'hello', 'A', 'succeeded', 1, 1, 30, now() - interval '2 seconds',"
        " now() - interval '1 second', 'w', now() from generate_series(1, 3000)"
    )
    env.sql("analyze public.runs")
    stats = client.monitoring.performance("hour", max_exact=300)
    assert not stats.exact and 0 < stats.sample_percent < 100
    assert stats.runs_read < 3000
    if stats.runs_read:  # a block sample of a small table may miss every page of it
        assert stats.total.duration.p50 == pytest.approx(1, abs=0.1)
        # each sampled run stands for 100 / sample_percent of them
        scale = 100 / stats.sample_percent
        assert stats.total.runs == pytest.approx(stats.runs_read * scale, abs=1)


def test_alerts_fire_once_remind_and_resolve(env: Env, client: Client) -> None:
    template(client, max_attempts=2)
    run = claimed(client, "w-dead")
    _expire(env, run.id)
    rules = Rules.model_validate(
        {"reminder": 1, "rules": {"stuck_runs": {"after": 0}, "dead_workers": {"enabled": False},
                                  "queue_age": {"enabled": False},
                                  "failure_rate": {"enabled": False}}}
    ).sql()  # fmt: skip
    [fired] = client.alerts.evaluate(rules)
    assert (fired.notice, fired.rule, fired.subject, fired.severity) == (
        "firing", "stuck_runs", "A", "critical")
    assert fired.run_ids == [run.id] and "1 stuck run in lane A" in fired.summary
    assert client.alerts.evaluate(rules) == []  # one notice per incident
    time.sleep(1.1)
    [again] = client.alerts.evaluate(rules)
    assert (again.notice, again.alert_id, again.notifications) == ("reminder", fired.alert_id, 2)
    [swept] = client.runs.sweep()
    assert (swept.run_id, swept.lane, swept.action) == (run.id, "A", "requeued")
    [done] = client.alerts.evaluate(rules)
    assert (done.notice, done.alert_id) == ("resolved", fired.alert_id)
    assert done.resolved_at is not None
    events = [e for e in client.events.list(run.id) if e.kind == "alert"]
    assert [e.data["notice"] for e in events] == ["firing", "resolved"]
    assert events[0].level == "error" and events[1].level == "info"
    assert [a.status for a in client.alerts.list()] == ["resolved"]


def test_alert_rules_each_fire_on_their_condition(env: Env, client: Client) -> None:
    template(client, max_attempts=1)
    for _ in range(3):
        r = claimed(client, "w1", lane="B")
        client.runs.complete(r.id, "w1", 1, "failed", error="nope")
    waiting = client.runs.create("hello", {"name": "old"}, lane="C")
    env.sql("update public.runs set available_at = now() - interval '1 hour' where id = %s",
            (str(waiting.id),))  # fmt: skip
    client.workers.register("w-gone", lanes=["C"], metadata={"heartbeat_seconds": 5})
    env.sql("update public.workers set last_seen_at = now() - interval '1 minute'")
    rules = Rules.model_validate(
        {"rules": {"failure_rate": {"min_runs": 3}, "queue_age": {"threshold": "30m"}}}
    ).sql()
    notices = {(n.rule, n.subject): n for n in client.alerts.evaluate(rules)}
    assert set(notices) == {("failure_rate", "hello"), ("queue_age", "C"),
                            ("dead_workers", "w-gone")}  # fmt: skip
    assert notices[("queue_age", "C")].run_ids == [waiting.id]
    assert notices[("failure_rate", "hello")].details["rate"] == 1
    assert notices[("dead_workers", "w-gone")].details["waiting_lanes"] == ["C"]
    client.lanes.pause("C")  # a paused lane's queue ages by design: no alert about it
    resolved = {(n.rule, n.subject) for n in client.alerts.evaluate(rules)}
    assert resolved == {("queue_age", "C"), ("dead_workers", "w-gone")}
    client.lanes.resume("C")


def test_operators_read_alerts_but_only_the_service_role_evaluates(
    env: Env, client: Client
) -> None:
    template(client)
    run = claimed(client, "w1")
    _expire(env, run.id)
    rules = Rules.model_validate({"rules": {"stuck_runs": {"after": 0}}}).sql()
    assert [n.rule for n in client.alerts.evaluate(rules)] == ["stuck_runs"]
    with env.client(Caller("operator", str(uuid.uuid4()))) as op:
        [alert] = op.alerts.list("firing")
        assert alert.rule == "stuck_runs" and alert.run_ids == [run.id]
        assert op.alerts.list("resolved") == []

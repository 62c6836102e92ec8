"""Bad input on every public method: each case raises its typed error with its stable ``code``
and leaves the database (rows, artifact objects, files) exactly as it was.

Issue 20's cases (text the database cannot hold, values that cannot become JSON, wrong types
and None, misspelt keys, unknown lanes, names too long in bytes) are all ``InvalidInput``,
raised by the client before anything is sent; another operator's run or session is
``NotFound``, as an id that does not exist.

The same case table runs against the sync ``Client`` and the ``AsyncClient`` (a case returns
either a value or an awaitable), over both transports.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pulser_ops import (
    AlreadyTerminal,
    Conflict,
    InvalidInput,
    InvalidParams,
    LeaseLost,
    NotFound,
    PermissionDenied,
    PulserOpsError,
    Run,
)
from pulser_ops.alerts import Rules
from pulser_ops.artifacts import INLINE_LIMIT
from tests.contract.conftest import ANON, NO_USER, SERVICE, Caller, Env
from tests.contract.helpers import basic_world, nested_lists

#: Every case must leave the database unchanged (and each test checks that), so all cases
#: share one world per transport instead of rebuilding it.
RESET_EACH_TEST = False

OPERATOR_A = Caller("operator", str(uuid.uuid4()))
OPERATOR_B = Caller("operator", str(uuid.uuid4()))
UNKNOWN = "00000000-0000-4000-8000-000000000001"
#: Alert rules as evaluate_alerts takes them (the defaults).
RULES = Rules().sql()


DEEP = nested_lists(10_000)


@dataclass(frozen=True)
class World:
    running: Run  # claimed by w1, attempt 1
    queued: Run
    finished: Run
    keyed: Run  # idempotency key "key-1"
    theirs: Run  # owned by OPERATOR_A, in A's session
    session_a: str
    inline_name: str


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[Any, World], Any]
    error: type[PulserOpsError]
    who: Caller = SERVICE
    sync_only: bool = False


E = Case
CASES = [
    # runs.create / create_many
    E("create-unknown-template", lambda c, w: c.runs.create("nope", {"name": "x"}), NotFound),
    E("create-params-wrong-type", lambda c, w: c.runs.create("hello", {"name": 5}), InvalidParams),
    E("create-params-missing", lambda c, w: c.runs.create("hello", {}), InvalidParams),
    E("create-params-not-object", lambda c, w: c.runs.create("hello", ["x"]), InvalidInput),
    E("create-params-below-min", lambda c, w: c.runs.create("hello", {"name": "x", "count": -1}),
      InvalidParams),
    E("create-priority-type", lambda c, w: c.runs.create("hello", {"name": "x"}, priority="hi"),
      InvalidInput),
    E("create-priority-range", lambda c, w: c.runs.create("hello", {"name": "x"}, priority=1000),
      InvalidInput),
    E("create-lane", lambda c, w: c.runs.create("hello", {"name": "x"}, lane="Z"), InvalidInput),
    E("create-max-attempts", lambda c, w: c.runs.create("hello", {"name": "x"}, max_attempts=0),
      InvalidInput),
    E("create-session-unknown",
      lambda c, w: c.runs.create("hello", {"name": "x"}, session_id=UNKNOWN), NotFound),
    E("create-session-not-uuid",
      lambda c, w: c.runs.create("hello", {"name": "x"}, session_id="nope"), InvalidInput),
    E("create-key-reused",
      lambda c, w: c.runs.create("hello", {"name": "other"}, idempotency_key="key-1"), Conflict),
    E("create-many-one-bad", lambda c, w: c.runs.create_many(
        [{"template": "hello", "params": {"name": "ok"}},
         {"template": "hello", "params": {"name": 1}}]), InvalidParams),
    E("create-many-unknown", lambda c, w: c.runs.create_many(
        [{"template": "hello", "params": {"name": "ok"}}, {"template": "nope"}]), NotFound),
    E("create-many-not-mapping", lambda c, w: c.runs.create_many(["hello"]), InvalidInput),
    # claim / heartbeat / complete / release / steps: fencing
    E("claim-limit", lambda c, w: c.runs.claim("w1", limit=0), InvalidInput),
    E("claim-limit-type", lambda c, w: c.runs.claim("w1", limit="many"), InvalidInput),
    E("claim-lease", lambda c, w: c.runs.claim("w1", lease_seconds=1), InvalidInput),
    E("claim-worker", lambda c, w: c.runs.claim(""), InvalidInput),
    E("heartbeat-stale", lambda c, w: c.runs.heartbeat(w.running.id, "w1", 7), LeaseLost),
    E("heartbeat-other-worker", lambda c, w: c.runs.heartbeat(w.running.id, "w2", 1), LeaseLost),
    E("heartbeat-unknown", lambda c, w: c.runs.heartbeat(UNKNOWN, "w1", 1), NotFound),
    E("heartbeat-not-uuid", lambda c, w: c.runs.heartbeat("nope", "w1", 1), InvalidInput),
    E("heartbeat-many-not-uuid", lambda c, w: c.runs.heartbeat_many("w1", [("nope", 1)]),
      InvalidInput),
    E("complete-stale", lambda c, w: c.runs.complete(w.running.id, "w1", 2, "succeeded"),
      LeaseLost),
    E("complete-finished", lambda c, w: c.runs.complete(w.finished.id, "w1", 1, "failed"),
      LeaseLost),
    E("complete-status", lambda c, w: c.runs.complete(w.running.id, "w1", 1, "done"),
      InvalidInput),
    E("complete-unknown", lambda c, w: c.runs.complete(UNKNOWN, "w1", 1, "succeeded"), NotFound),
    E("complete-many-status", lambda c, w: c.runs.complete_many(
        "w1", [{"run_id": w.running.id, "attempt": 1, "status": "done"}]), InvalidInput),
    E("complete-many-twice", lambda c, w: c.runs.complete_many(
        "w1", [{"run_id": w.running.id, "attempt": 1, "status": "succeeded"}] * 2), InvalidInput),
    E("complete-many-one-bad", lambda c, w: c.runs.complete_many(
        "w1", [{"run_id": w.running.id, "attempt": 1, "status": "succeeded"},
               {"run_id": w.queued.id, "attempt": 1, "status": "failed", "error": "x" * 70000}]),
      InvalidInput),
    E("complete-many-not-uuid", lambda c, w: c.runs.complete_many(
        "w1", [{"run_id": "nope", "attempt": 1, "status": "succeeded"}]), InvalidInput),
    E("complete-many-step-kind", lambda c, w: c.runs.complete_many(
        "w1", [{"run_id": w.running.id, "attempt": 1, "status": "succeeded",
                "steps": [{"idx": 0, "name": "s", "kind": "bash", "status": "succeeded"}]}]),
      InvalidInput),
    E("complete-many-step-idx", lambda c, w: c.runs.complete_many(
        "w1", [{"run_id": w.running.id, "attempt": 1, "status": "succeeded",
                "steps": [{"idx": -1, "name": "s", "kind": "shell", "status": "succeeded"}]}]),
      InvalidInput),
    E("complete-many-worker", lambda c, w: c.runs.complete_many(
        "", [{"run_id": w.running.id, "attempt": 1, "status": "succeeded"}]), InvalidInput),
    E("release-stale", lambda c, w: c.runs.release(w.running.id, "w9", 1), LeaseLost),
    E("release-queued", lambda c, w: c.runs.release(w.queued.id, "w1", 0), LeaseLost),
    E("record-step-stale",
      lambda c, w: c.runs.record_step(w.running.id, "w1", 2, 0, "s", "shell", "running"),
      LeaseLost),
    E("record-step-kind",
      lambda c, w: c.runs.record_step(w.running.id, "w1", 1, 0, "s", "bash", "running"),
      InvalidInput),
    E("record-step-status",
      lambda c, w: c.runs.record_step(w.running.id, "w1", 1, 0, "s", "shell", "meh"),
      InvalidInput),
    # cancel / get / list / maintenance
    E("cancel-unknown", lambda c, w: c.runs.cancel(UNKNOWN), NotFound),
    E("cancel-finished", lambda c, w: c.runs.cancel(w.finished.id), AlreadyTerminal),
    E("get-unknown", lambda c, w: c.runs.get(UNKNOWN), NotFound),
    E("get-not-uuid", lambda c, w: c.runs.get("../etc"), InvalidInput),
    E("get-many-not-uuid", lambda c, w: c.runs.get_many([w.queued.id, "x"]), InvalidInput),
    E("list-limit", lambda c, w: c.runs.list(limit=0), InvalidInput),
    E("list-status", lambda c, w: c.runs.list(status=["bogus"]), InvalidInput),
    E("list-after", lambda c, w: c.runs.list(after="nope"), InvalidInput),
    E("iter-status", lambda c, w: list(c.runs.iter(status="bogus")), InvalidInput,
      sync_only=True),
    E("stuck-limit-type", lambda c, w: c.runs.stuck("many"), InvalidInput),
    E("steps-not-uuid", lambda c, w: c.runs.steps("nope"), InvalidInput),
    E("sweep-limit", lambda c, w: c.runs.sweep(0), InvalidInput),
    E("delete-unfinished", lambda c, w: c.runs.delete([w.finished.id, w.queued.id]), Conflict),
    E("delete-not-uuid", lambda c, w: c.runs.delete(["nope"]), InvalidInput),
    E("prune-negative", lambda c, w: c.runs.prune(-1), InvalidInput),
    # events
    E("events-unknown-run", lambda c, w: c.events.log(UNKNOWN, "x"), NotFound),
    E("events-level", lambda c, w: c.events.log(w.running.id, "x", level="loud"), InvalidInput),
    E("events-kind", lambda c, w: c.events.log(w.running.id, "x", kind="Not A Kind"),
      InvalidInput),
    E("events-message-type", lambda c, w: c.events.log(w.running.id, 123), InvalidInput),
    E("events-batch-one-bad", lambda c, w: c.events.append(
        [{"run_id": w.running.id, "kind": "log", "message": "ok"},
         {"run_id": UNKNOWN, "kind": "log", "message": "lost"}]), NotFound),
    E("events-list-not-uuid", lambda c, w: c.events.list("nope"), InvalidInput),
    # artifacts
    E("artifact-dotdot", lambda c, w: c.artifacts.put(w.running.id, "../x", "t"), InvalidInput),
    E("artifact-abs", lambda c, w: c.artifacts.put(w.running.id, "/abs", b"t"), InvalidInput),
    E("artifact-inner-dotdot", lambda c, w: c.artifacts.put(w.running.id, "a/../../b", b"t"),
      InvalidInput),
    E("artifact-name-long", lambda c, w: c.artifacts.put(w.running.id, "n" * 256, "t"),
      InvalidInput),
    E("artifact-inline-too-big",
      lambda c, w: c.artifacts.put(w.running.id, "big.txt", "x" * (INLINE_LIMIT + 1),
                                   inline=True), InvalidInput),
    E("artifact-data-type", lambda c, w: c.artifacts.put(w.running.id, "n.txt", 123),
      InvalidInput),
    E("artifact-unknown-run-file", lambda c, w: c.artifacts.put(UNKNOWN, "f.bin", b"data"),
      NotFound),
    E("artifact-unknown-run-inline", lambda c, w: c.artifacts.put(UNKNOWN, "f.txt", "data"),
      NotFound),
    E("artifact-get-unknown", lambda c, w: c.artifacts.get(w.running.id, "nope.txt"), NotFound),
    E("artifact-list-not-uuid", lambda c, w: c.artifacts.list("nope"), InvalidInput),
    E("artifact-download-unknown", lambda c, w: c.artifacts.download(w.running.id, "nope"),
      NotFound),
    E("artifact-signed-inline", lambda c, w: c.artifacts.signed_url(w.running.id, w.inline_name),
      InvalidInput),
    E("artifact-signed-unknown", lambda c, w: c.artifacts.signed_url(w.running.id, "nope"),
      NotFound),
    # templates, sessions, lanes, workers
    E("template-get-unknown", lambda c, w: c.templates.get("nope"), NotFound),
    E("template-name", lambda c, w: c.templates.upsert({"name": "Bad Name"}), InvalidInput),
    E("template-unknown-field", lambda c, w: c.templates.upsert({"name": "t", "colour": 1}),
      InvalidInput),
    E("template-schema", lambda c, w: c.templates.upsert(
        {"name": "t", "params_schema": {"type": "array"}}), InvalidInput),
    E("template-step-kind", lambda c, w: c.templates.upsert(
        {"name": "t", "steps": [{"kind": "telnet"}]}), InvalidInput),
    E("template-not-mapping", lambda c, w: c.templates.upsert(["t"]), InvalidInput),
    E("templates-many-second-bad", lambda c, w: c.templates.upsert_many(
        [{"name": "fine"}, {"name": "t", "params_schema": {"type": "array"}}]), InvalidInput),
    E("templates-many-twice", lambda c, w: c.templates.upsert_many(
        [{"name": "same"}, {"name": "same"}]), InvalidInput),
    E("templates-many-empty", lambda c, w: c.templates.upsert_many([]), InvalidInput),
    E("template-field-type", lambda c, w: c.templates.upsert({"name": "t", "max_attempts": "x"}),
      InvalidInput),
    E("session-metadata-type", lambda c, w: c.sessions.create("s", [1, 2]), InvalidInput),
    E("session-list-type", lambda c, w: c.sessions.list("all"), InvalidInput),
    E("lane-unknown", lambda c, w: c.lanes.pause("Z"), NotFound),
    E("lane-resume-unknown", lambda c, w: c.lanes.resume("Z"), NotFound),
    E("lane-concurrency", lambda c, w: c.lanes.set_concurrency("A", 0), InvalidInput),
    E("lane-concurrency-type", lambda c, w: c.lanes.set_concurrency("A", "many"), InvalidInput),
    E("worker-id", lambda c, w: c.workers.register(""), InvalidInput),
    E("worker-metadata-type", lambda c, w: c.workers.register("w", metadata="x"), InvalidInput),
    E("worker-deregister-unknown", lambda c, w: c.workers.deregister("nope"), NotFound),
    # monitoring and alerts
    E("fleet-exact-limit", lambda c, w: c.monitoring.fleet(exact_limit=0), InvalidInput),
    E("fleet-forget", lambda c, w: c.monitoring.fleet(forget_seconds=1), InvalidInput),
    E("performance-period", lambda c, w: c.monitoring.performance("year"), InvalidInput),
    E("performance-max-exact", lambda c, w: c.monitoring.performance("day", max_exact=1),
      InvalidInput),
    E("alerts-rules-missing", lambda c, w: c.alerts.evaluate({}), InvalidInput),
    E("alerts-rules-type", lambda c, w: c.alerts.evaluate(RULES | {"keep_days": "x"}),
      InvalidInput),
    E("alerts-rule-value", lambda c, w: c.alerts.evaluate(
        RULES | {"failure_rate": RULES["failure_rate"] | {"threshold": 2}}), InvalidInput),
    E("alerts-rules-not-mapping", lambda c, w: c.alerts.evaluate([1]), InvalidInput),
    E("alerts-list-status", lambda c, w: c.alerts.list("open"), InvalidInput),
    # operators: their own runs only, and no worker or admin functions
    # another's run or session is not found, as an id that does not exist (no probing)
    E("op-cancel-theirs", lambda c, w: c.runs.cancel(w.theirs.id), NotFound, who=OPERATOR_B),
    E("op-log-theirs", lambda c, w: c.events.log(w.theirs.id, "hi"), NotFound, who=OPERATOR_B),
    E("op-get-theirs", lambda c, w: c.runs.get(w.theirs.id), NotFound, who=OPERATOR_B),
    E("op-session-theirs",
      lambda c, w: c.runs.create("hello", {"name": "x"}, session_id=w.session_a),
      NotFound, who=OPERATOR_B),
    E("op-rerun-theirs", lambda c, w: c.runs.rerun(w.theirs.id), NotFound, who=OPERATOR_B),
    E("op-delete-session-theirs", lambda c, w: c.sessions.delete(w.session_a), NotFound,
      who=OPERATOR_B),
    E("op-delete-session-busy", lambda c, w: c.sessions.delete(w.session_a), Conflict,
      who=OPERATOR_A),
    E("session-delete-unknown", lambda c, w: c.sessions.delete(UNKNOWN), NotFound),
    E("session-delete-not-uuid", lambda c, w: c.sessions.delete("nope"), InvalidInput),
    E("op-claim", lambda c, w: c.runs.claim("w1"), PermissionDenied, who=OPERATOR_A),
    E("op-heartbeat", lambda c, w: c.runs.heartbeat(w.running.id, "w1", 1), PermissionDenied,
      who=OPERATOR_A),
    E("op-complete", lambda c, w: c.runs.complete(w.theirs.id, "w1", 1, "succeeded"),
      PermissionDenied, who=OPERATOR_A),
    E("op-record-step",
      lambda c, w: c.runs.record_step(w.running.id, "w1", 1, 0, "s", "shell", "running"),
      PermissionDenied, who=OPERATOR_A),
    E("op-heartbeat-many", lambda c, w: c.runs.heartbeat_many("w1", [(w.running.id, 1)]),
      PermissionDenied, who=OPERATOR_A),
    E("op-complete-many", lambda c, w: c.runs.complete_many(
        "w1", [{"run_id": w.running.id, "attempt": 1, "status": "succeeded"}]),
      PermissionDenied, who=OPERATOR_A),
    E("op-release", lambda c, w: c.runs.release(w.running.id, "w1", 1), PermissionDenied,
      who=OPERATOR_A),
    E("op-sweep", lambda c, w: c.runs.sweep(), PermissionDenied, who=OPERATOR_A),
    E("op-delete", lambda c, w: c.runs.delete([w.finished.id]), PermissionDenied,
      who=OPERATOR_A),
    E("op-prune", lambda c, w: c.runs.prune(0), PermissionDenied, who=OPERATOR_A),
    E("op-artifact-file", lambda c, w: c.artifacts.put(w.theirs.id, "f.bin", b"x"),
      PermissionDenied, who=OPERATOR_A),
    E("op-artifact-inline", lambda c, w: c.artifacts.put(w.theirs.id, "f.txt", "x"),
      PermissionDenied, who=OPERATOR_A),
    E("op-templates-many", lambda c, w: c.templates.upsert_many([{"name": "mine"}]),
      PermissionDenied, who=OPERATOR_A),
    E("op-template", lambda c, w: c.templates.upsert({"name": "mine"}), PermissionDenied,
      who=OPERATOR_A),
    E("op-lane", lambda c, w: c.lanes.pause("A"), PermissionDenied, who=OPERATOR_A),
    E("op-worker", lambda c, w: c.workers.register("w9"), PermissionDenied, who=OPERATOR_A),
    E("op-deregister", lambda c, w: c.workers.deregister("w1"), PermissionDenied,
      who=OPERATOR_A),
    E("op-concurrency", lambda c, w: c.lanes.set_concurrency("A", 2), PermissionDenied,
      who=OPERATOR_A),
    E("op-evaluate-alerts", lambda c, w: c.alerts.evaluate(RULES), PermissionDenied,
      who=OPERATOR_A),
    # the anon key: nothing at all
    E("anon-create", lambda c, w: c.runs.create("hello", {"name": "x"}), PermissionDenied,
      who=ANON),
    E("anon-list", lambda c, w: c.runs.list(), PermissionDenied, who=ANON),
    E("anon-get", lambda c, w: c.runs.get(w.queued.id), PermissionDenied, who=ANON),
    E("anon-cancel", lambda c, w: c.runs.cancel(w.queued.id), PermissionDenied, who=ANON),
    E("anon-events", lambda c, w: c.events.list(w.running.id), PermissionDenied, who=ANON),
    E("anon-templates", lambda c, w: c.templates.list(), PermissionDenied, who=ANON),
    E("anon-session", lambda c, w: c.sessions.create("s"), PermissionDenied, who=ANON),
    E("anon-lanes", lambda c, w: c.lanes.list(), PermissionDenied, who=ANON),
    E("anon-workers", lambda c, w: c.workers.list(), PermissionDenied, who=ANON),
    E("anon-worker-health", lambda c, w: c.workers.health(), PermissionDenied, who=ANON),
    E("anon-lane-stats", lambda c, w: c.lanes.stats(), PermissionDenied, who=ANON),
    E("anon-sessions", lambda c, w: c.sessions.list(), PermissionDenied, who=ANON),
    E("anon-artifacts", lambda c, w: c.artifacts.list(w.running.id), PermissionDenied, who=ANON),
    E("anon-steps", lambda c, w: c.runs.steps(w.running.id), PermissionDenied, who=ANON),
    E("anon-fleet", lambda c, w: c.monitoring.fleet(), PermissionDenied, who=ANON),
    E("anon-performance", lambda c, w: c.monitoring.performance(), PermissionDenied, who=ANON),
    E("anon-alerts", lambda c, w: c.alerts.list(), PermissionDenied, who=ANON),
    # a signed token that names no user: refused everywhere, never the service role's rows
    E("nouser-create", lambda c, w: c.runs.create("hello", {"name": "k"}, lane="C",
                                                  idempotency_key="key-1"),
      PermissionDenied, who=NO_USER),
    E("nouser-list", lambda c, w: c.runs.list(), PermissionDenied, who=NO_USER),
    E("nouser-get", lambda c, w: c.runs.get(w.keyed.id), PermissionDenied, who=NO_USER),
    E("nouser-templates", lambda c, w: c.templates.list(), PermissionDenied, who=NO_USER),
    E("nouser-lanes", lambda c, w: c.lanes.list(), PermissionDenied, who=NO_USER),
    E("nouser-events", lambda c, w: c.events.list(w.running.id), PermissionDenied, who=NO_USER),
    E("nouser-session", lambda c, w: c.sessions.create("s"), PermissionDenied, who=NO_USER),
    E("nouser-board", lambda c, w: c.lanes.board(), PermissionDenied, who=NO_USER),
    E("nouser-cancel", lambda c, w: c.runs.cancel(w.queued.id), PermissionDenied, who=NO_USER),
    # 8. text PostgreSQL cannot hold: refused before anything is sent
    E("nul-session-title", lambda c, w: c.sessions.create("a\x00b"), InvalidInput),
    E("surrogate-cancel-reason", lambda c, w: c.runs.cancel(w.queued.id, "bad\udcff"),
      InvalidInput),
    E("nul-template-name", lambda c, w: c.runs.create("hel\x00lo", {"name": "x"}), InvalidInput),
    E("surrogate-template-get", lambda c, w: c.templates.get("\udcff"), InvalidInput),
    E("nul-event-message", lambda c, w: c.events.log(w.running.id, "a\x00b"), InvalidInput),
    E("nul-worker-id", lambda c, w: c.runs.claim("w\x00"), InvalidInput),
    E("nul-register", lambda c, w: c.workers.register("w\x00"), InvalidInput),
    E("nul-artifact-name", lambda c, w: c.artifacts.put(w.running.id, "n\x00.txt", "x"),
      InvalidInput),
    E("nul-list-template", lambda c, w: c.runs.list(template="\x00"), InvalidInput),
    E("nul-search", lambda c, w: c.runs.search({"q": "a\x00"}), InvalidInput),
    E("nul-complete-error", lambda c, w: c.runs.complete(w.running.id, "w1", 1, "failed",
                                                         error="e\x00"), InvalidInput),
    E("nul-in-params", lambda c, w: c.runs.create("hello", {"name": "a\x00"}), InvalidInput),
    E("nul-in-key-of-params", lambda c, w: c.runs.create("hello", {"name": "a", "\x00": 1}),
      InvalidInput),
    E("nul-inline-text", lambda c, w: c.artifacts.put(w.running.id, "n.txt", "a\x00",
                                                      inline=True), InvalidInput),
    # 9. values that cannot become JSON
    E("json-object", lambda c, w: c.runs.create("hello", {"name": object()}), InvalidInput),
    E("json-bytes", lambda c, w: c.runs.create("hello", {"name": b"\xff"}), InvalidInput),
    E("json-deep-params", lambda c, w: c.runs.create("hello", {"name": "x", "d": DEEP}),
      InvalidInput),
    E("json-result", lambda c, w: c.runs.complete(w.running.id, "w1", 1, "succeeded",
                                                  result=object()), InvalidInput),
    E("json-nan-result", lambda c, w: c.runs.complete(w.running.id, "w1", 1, "succeeded",
                                                      result=float("nan")), InvalidInput),
    E("json-event-data", lambda c, w: c.events.log(w.running.id, "x", data=DEEP), InvalidInput),
    E("json-metadata", lambda c, w: c.workers.register("w", metadata={"x": object()}),
      InvalidInput),
    E("json-session-metadata", lambda c, w: c.sessions.create("s", {"a": float("inf")}),
      InvalidInput),
    E("json-params-schema", lambda c, w: c.templates.upsert({"name": "t", "params_schema": DEEP}),
      InvalidInput),
    E("json-artifact-metadata",
      lambda c, w: c.artifacts.put(w.running.id, "m.txt", "x", metadata={"a": object()}),
      InvalidInput),
    E("json-step-output",
      lambda c, w: c.runs.record_step(w.running.id, "w1", 1, 0, "s", "shell", "running",
                                      output=b"\xff"), InvalidInput),
    E("json-complete-many-result", lambda c, w: c.runs.complete_many(
        "w1", [{"run_id": w.running.id, "attempt": 1, "status": "succeeded",
                "result": DEEP}]), InvalidInput),
    # 10. wrong types and None
    E("create-many-none", lambda c, w: c.runs.create_many(None), InvalidInput),
    E("get-many-none", lambda c, w: c.runs.get_many(None), InvalidInput),
    E("heartbeat-many-none", lambda c, w: c.runs.heartbeat_many("w1", None), InvalidInput),
    E("heartbeat-many-short", lambda c, w: c.runs.heartbeat_many("w1", [(w.running.id,)]),
      InvalidInput),
    E("complete-many-none", lambda c, w: c.runs.complete_many("w1", None), InvalidInput),
    E("events-append-none", lambda c, w: c.events.append(None), InvalidInput),
    E("templates-many-none", lambda c, w: c.templates.upsert_many(None), InvalidInput),
    E("delete-none", lambda c, w: c.runs.delete(None), InvalidInput),
    E("list-lane-int", lambda c, w: c.runs.list(lane=5), InvalidInput),
    E("claim-lanes-int", lambda c, w: c.runs.claim("w1", lanes=5), InvalidInput),
    E("register-lanes-int", lambda c, w: c.workers.register("w", lanes=5), InvalidInput),
    E("list-created-after-text", lambda c, w: c.runs.list(created_after="yesterday"),
      InvalidInput),
    E("iter-limit-text", lambda c, w: list(c.runs.iter(limit="x")), InvalidInput,
      sync_only=True),
    E("prune-text", lambda c, w: c.runs.prune("abc"), InvalidInput),
    E("artifact-name-none", lambda c, w: c.artifacts.put(w.running.id, None, "x"), InvalidInput),
    E("artifact-data-none", lambda c, w: c.artifacts.put(w.running.id, "x.txt", None),
      InvalidInput),
    E("get-int", lambda c, w: c.runs.get(5), InvalidInput),
    E("create-template-none", lambda c, w: c.runs.create(None), InvalidInput),
    E("unknown-argument", lambda c, w: c.runs.list(limt=5), InvalidInput),
    # 11. request models refuse unknown keys
    E("create-many-typo", lambda c, w: c.runs.create_many([{"template": "hello",
                                                            "priorty": 50}]), InvalidInput),
    E("events-typo", lambda c, w: c.events.append([{"run_id": w.running.id, "kind": "log",
                                                    "mesage": "x"}]), InvalidInput),
    E("complete-many-typo", lambda c, w: c.runs.complete_many(
        "w1", [{"run_id": w.running.id, "attempt": 1, "status": "succeeded", "reslt": 1}]),
      InvalidInput),
    E("search-filter-typo", lambda c, w: c.runs.search({"statuses": ["queued"]}), InvalidInput),
    # 12. an unknown lane is refused like an unknown status
    E("list-lane-unknown", lambda c, w: c.runs.list(lane="Z"), InvalidInput),
    E("list-lanes-unknown", lambda c, w: c.runs.list(lane=["A", "Z"]), InvalidInput),
    E("claim-lane-unknown", lambda c, w: c.runs.claim("w1", lanes=["Z"]), InvalidInput),
    # 13. artifact names are limited in bytes, the same way everywhere
    E("artifact-name-emoji", lambda c, w: c.artifacts.put(w.running.id, "🚀" * 100, b"x"),
      InvalidInput),
    E("artifact-name-emoji-inline", lambda c, w: c.artifacts.put(w.running.id, "🚀" * 100, "x"),
      InvalidInput),
    E("artifact-key-segment-long", lambda c, w: c.artifacts.put(w.running.id, "é" * 100, b"x"),
      InvalidInput),
    E("artifact-name-c1-control", lambda c, w: c.artifacts.put(w.running.id, "a\x85b", b"x"),
      InvalidInput),
]


@pytest.fixture(scope="module")
def world(env: Env) -> World:
    env.reset()
    client = env.shared_client()
    running, queued, finished = basic_world(client)
    keyed = client.runs.create("hello", {"name": "k"}, lane="C", idempotency_key="key-1")
    client.artifacts.put(running.id, "inline.txt", "inline")
    client.artifacts.put(running.id, "file.bin", b"file")
    client.events.log(running.id, "hello")
    client.runs.record_step(running.id, "w1", 1, 0, "greet", "shell", "running")
    client.workers.register("w1", lanes=["A"])
    op = env.shared_client(OPERATOR_A)
    session = op.sessions.create("a's")
    theirs = op.runs.create("hello", {"name": "a"}, lane="D", session_id=session.id)
    return World(running, queued, finished, keyed, theirs, str(session.id), "inline.txt")


def _check(case: Case, raised: pytest.ExceptionInfo[PulserOpsError]) -> None:
    assert type(raised.value) is case.error, f"{type(raised.value).__name__}: {raised.value}"
    assert raised.value.code == case.error.code
    assert str(raised.value)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_sync(env: Env, world: World, case: Case) -> None:
    before = env.state()
    with pytest.raises(PulserOpsError) as raised:
        case.call(env.shared_client(case.who), world)
    _check(case, raised)
    assert env.state() == before


@pytest.mark.parametrize("case", [c for c in CASES if not c.sync_only], ids=lambda c: c.id)
async def test_bad_input_async(env: Env, world: World, case: Case) -> None:
    before = env.state()
    async with env.aclient(case.who) as c:
        with pytest.raises(PulserOpsError) as raised:
            result = case.call(c, world)
            if inspect.isawaitable(result):
                await result
    _check(case, raised)
    assert env.state() == before


#: Calls an operator makes about a run or session id: (run id, session id) -> result.
PROBES: dict[str, Callable[[Any, str, str], Any]] = {
    "cancel": lambda c, run, sess: c.runs.cancel(run),
    "log": lambda c, run, sess: c.events.log(run, "x"),
    "rerun": lambda c, run, sess: c.runs.rerun(run),
    "get": lambda c, run, sess: c.runs.get(run),
    "steps": lambda c, run, sess: c.runs.steps(run),
    "enqueue-into-session": lambda c, run, sess: c.runs.create("hello", {"name": "x"},
                                                               session_id=sess),
    "delete-session": lambda c, run, sess: c.sessions.delete(sess),
    "bulk-cancel": lambda c, run, sess: c.runs.bulk_cancel([run]),
    "bulk-rerun": lambda c, run, sess: c.runs.bulk_rerun([run]),
    "run-now": lambda c, run, sess: c.runs.run_now(run),
    "bulk-run-now": lambda c, run, sess: c.runs.bulk_run_now([run]),
    "list-after": lambda c, run, sess: c.runs.list(after=run),
}


def _answer(call: Callable[[], Any], ids: tuple[str, str]) -> tuple[str, ...]:
    """What a call answers, with the ids it was given written as <id>."""
    try:
        result = call()
    except PulserOpsError as e:
        text = " | ".join(str(x) for x in (type(e).__name__, e.code, e, e.detail, e.hint))
    else:
        text = f"ok {result!r}"
    for i in ids:
        text = text.replace(str(i), "<id>")
    return ("answer", text)


@pytest.mark.parametrize("probe", sorted(PROBES))
def test_anothers_run_or_session_answers_like_one_that_does_not_exist(
    env: Env, world: World, probe: str
) -> None:
    """Security 3: no operator can tell another's id from one that does not exist."""
    before = env.state()
    c = env.shared_client(OPERATOR_B)
    call = PROBES[probe]
    theirs = _answer(lambda: call(c, str(world.theirs.id), world.session_a),
                     (str(world.theirs.id), world.session_a))
    unknown = _answer(lambda: call(c, UNKNOWN, UNKNOWN), (UNKNOWN, UNKNOWN))
    assert theirs == unknown
    assert env.state() == before

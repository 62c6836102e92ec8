"""Property-based: generated hostile values into every public SDK method, on both transports
and both surfaces (``Client`` and ``AsyncClient``).

For each method the other arguments are sensible ones (``BASE``); Hypothesis replaces one or
more of them with hostile values: text with NUL or lone surrogates, huge text, wrong types,
None, JSON that is nested deep or holds what JSON cannot (an ``object()``, non-UTF-8 bytes,
NaN), unknown ids. The property: the call succeeds, or raises a ``PulserOpsError`` subclass and
the whole control plane (every table, the artifact objects, the files) is as it was.

The methods are listed from the client classes, not by hand, and the test fails when one has
no base arguments here, so a new method cannot be missed. The normal suite runs a few examples
per method (``PROFILE``); ``-m slow`` runs a larger budget drawn over all methods at once (the
same draws every run; ``PULSER_OPS_FUZZ=1`` draws new ones: see ``tests/support/fuzz.py``).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulser_ops import Artifact, AsyncClient, Client, PulserOpsError, Run
from pulser_ops.client._sync.client import _Namespace
from tests.contract.conftest import Env
from tests.contract.helpers import basic_world, nested_lists
from tests.support import fuzz

#: The world never has to be rebuilt: a call that fails must leave it as it was (checked), and
#: one that succeeds changes it the way any user's call would.
RESET_EACH_TEST = False

#: Examples per method and transport in the normal suite; and drawn over all methods in the
#: slow test. Small in the normal suite on purpose: every method is tried, on every run.
EXAMPLES_PER_METHOD = 4
EXAMPLES_SLOW = 200


class Deep(list[Any]):
    """A list nested 10,000 deep, with a repr that does not recurse (Hypothesis prints it)."""

    def __repr__(self) -> str:
        return "<a list nested 10,000 deep>"


DEEP = nested_lists(10_000, Deep())
PLAIN_DEEP = list(DEEP)  # the same, as a plain list (whose repr recurses)
UNKNOWN = "00000000-0000-4000-8000-0000000000aa"

any_char = st.characters(exclude_categories=())  # surrogates included
texts = st.one_of(
    st.text(any_char, max_size=12),
    st.text(max_size=8).map(lambda s: f"{s}\x00{s}"),
    st.text(max_size=8).map(lambda s: f"{s}\udcff"),
    st.sampled_from(["", " ", "x" * 70_000, "é" * 300, "🚀" * 100, "../../etc/passwd", "a/../b",
                     "/abs", "Z", "A,Z", "A,B", "queued,bogus", "yesterday", "nan", "-1",
                     "Bad Name", UNKNOWN, str(uuid.UUID(int=0)), "1e309"]),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.binary(max_size=6),
    st.sampled_from([b"\xff\xfe", 0, -1, 2**31, 10**6]),
)
junk = st.sampled_from([object(), {1, 2}, DEEP, {"k": DEEP}, PLAIN_DEEP, {1: "int key"}, {"a": object()},
                        {"a": b"\xff"}, {"a": float("nan")}, [None], (), [[]], {"\x00": 1},
                        {"a": "\udcff"}, [("x",)], timedelta(days=-1), datetime(1, 1, 1, tzinfo=UTC),
                        uuid.UUID(int=7), math.inf])
json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(any_char, max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(any_char, max_size=4), inner, max_size=3)),
    max_leaves=8,
)
hostile = st.one_of(texts, scalars, junk, json_like, st.lists(texts, max_size=3),
                    st.lists(scalars, max_size=3))


@dataclass(frozen=True)
class World:
    running: Run
    queued: Run
    finished: Run


def _base(w: World) -> dict[str, dict[str, Any]]:
    """Sensible arguments of every public method, by ``namespace.method``."""
    running = str(w.running.id)
    completion = {"run_id": running, "attempt": 1, "status": "failed", "error": "x"}
    return {
        "runs.create": {"template": "hello", "params": {"name": "p"}, "lane": "A", "priority": 0,
                        "run_after": None, "idempotency_key": None, "session_id": None,
                        "max_attempts": None},
        "runs.create_many": {"runs": [{"template": "hello", "params": {"name": "p"}}]},
        "runs.claim": {"worker_id": "w-prop", "lanes": ["D"], "limit": 1, "lease_seconds": None},
        "runs.heartbeat": {"run_id": running, "worker_id": "w1", "attempt": 1,
                           "lease_seconds": None},
        "runs.heartbeat_many": {"worker_id": "w1", "held": [(running, 1)]},
        "runs.cancel": {"run_id": str(w.queued.id), "reason": "r"},
        "runs.complete": {"run_id": running, "worker_id": "w-other", "attempt": 1,
                          "status": "failed", "result": None, "error": "e", "error_class": None,
                          "retryable": True},
        "runs.complete_many": {"worker_id": "w-other", "completions": [completion]},
        "runs.release": {"run_id": running, "worker_id": "w-other", "attempt": 1, "reason": None},
        "runs.get": {"run_id": running, "on_behalf_of": None},
        "runs.get_many": {"run_ids": [running]},
        "runs.list": {"status": None, "lane": None, "template": None, "session_id": None,
                      "created_after": None, "created_before": None, "stuck": False, "limit": 5,
                      "after": None},
        "runs.iter": {"status": None, "lane": "B", "template": None, "session_id": None,
                      "created_after": None, "created_before": None, "stuck": False,
                      "limit": 50},
        "runs.search": {"filter": {}, "limit": 5},
        "runs.count": {"filter": {}, "max_exact": None},
        "runs.bulk_cancel": {"run_ids": [UNKNOWN], "filter": None, "max_runs": 5, "dry_run": True,
                             "reason": None},
        "runs.bulk_rerun": {"run_ids": [UNKNOWN], "filter": None, "max_runs": 5, "dry_run": True},
        "runs.bulk_run_now": {"run_ids": [UNKNOWN], "filter": None, "max_runs": 5, "dry_run": True},
        "runs.run_now": {"run_id": UNKNOWN},
        "runs.rerun": {"run_id": str(w.finished.id), "params": None, "lane": "C"},
        "runs.stuck": {"limit": 5},
        "runs.steps": {"run_id": running},
        "runs.record_step": {"run_id": running, "worker_id": "w-other", "attempt": 1, "idx": 0,
                             "name": "s", "kind": "shell", "status": "running",
                             "exit_code": None, "error": None, "output": None},
        "runs.sweep": {"limit": 5},
        "runs.prune": {"older_than": 10**9, "batch": 10, "on_batch": None},
        "runs.delete": {"run_ids": [UNKNOWN]},
        "events.append": {"events": [{"run_id": running, "kind": "log", "message": "m"}]},
        "events.log": {"run_id": running, "message": "m", "kind": "log", "level": "info",
                       "data": None},
        "events.list": {"run_id": running, "after_seq": 0, "limit": 5},
        "events.last": {"run_id": running, "limit": 5},
        "events.timeline": {"run_id": running, "limit": 5},
        "artifacts.put": {"run_id": running, "name": "prop.txt", "data": "x", "kind": None,
                          "content_type": None, "metadata": None, "attempt": None,
                          "inline": None},
        "artifacts.get": {"run_id": running, "name": "a.txt", "attempt": None},
        "artifacts.list": {"run_id": running},
        "artifacts.download": {"run_id": running, "name": "a.txt", "attempt": None},
        "artifacts.head": {"artifact": Artifact(id=uuid.uuid4(), run_id=running, name="a.txt",
                                                kind="text", content_type="text/plain",
                                                size_bytes=6, inline_text="inline",
                                                created_at=datetime.now(UTC)),
                           "max_bytes": 3},
        "artifacts.signed_url": {"run_id": running, "name": "f.bin", "expires_in": 60,
                                 "attempt": None},
        "templates.list": {},
        "schedules.list": {},
        "schedules.get": {"name": "prop-none"},
        "schedules.upsert": {"schedule": {"name": "prop-sched", "template": "hello",
                                          "cron": "@daily", "params": {"name": "p"}}},
        "schedules.upsert_many": {"schedules": [{"name": "prop-sched", "template": "hello",
                                                 "cron": "@daily", "params": {"name": "p"}}]},
        "schedules.pause": {"name": "prop-none"},
        "schedules.resume": {"name": "prop-none"},
        "schedules.delete": {"name": "prop-none"},
        "schedules.preview": {"cron": "*/5 * * * *", "timezone": "UTC", "count": 3},
        "schedules.enqueue_due": {"limit": 5},
        "templates.get": {"name": "hello"},
        "templates.upsert": {"template": {"name": "prop-t"}},
        "templates.upsert_many": {"templates": [{"name": "prop-t"}]},
        "templates.delete": {"name": "prop-gone"},
        "templates.summaries": {},
        "templates.get_version": {"name": "hello", "version": 1},
        "templates.versions": {"name": "hello", "limit": 5},
        "templates.validate": {"template": {"name": "prop-t", "max_attempts": 0}},
        "templates.validate_params": {"name": "hello", "params": {"name": 3}},
        "sessions.create": {"title": "t", "metadata": None},
        "sessions.list": {"limit": 5},
        "sessions.delete": {"session_id": UNKNOWN},
        "sessions.summaries": {"limit": 5},
        "sessions.post": {"session_id": UNKNOWN, "messages": [{"kind": "note", "body": "b"}]},
        "sessions.messages": {"session_id": UNKNOWN, "before_id": None, "limit": 5},
        "sessions.runs": {"session_id": UNKNOWN, "limit": 5},
        "spec_docs.put": {"run_id": running, "worker_id": "w-other", "attempt": 1,
                          "docs": [{"path": "spec.md", "kind": "note", "content": "c"}]},
        "spec_docs.list": {"run_id": None, "session_id": None, "limit": 5},
        "monitoring.fleet": {"exact_limit": None, "stale_beats": None, "forget_seconds": None,
                             "timeout_ms": None},
        "monitoring.performance": {"period": "day", "max_exact": None, "step_runs": None},
        "alerts.evaluate": {"rules": {}},
        "alerts.list": {"status": None, "limit": 5},
        "lanes.list": {},
        "lanes.pause": {"lane": "D"},
        "lanes.resume": {"lane": "D"},
        "lanes.set_concurrency": {"lane": "D", "max_running": 3},
        "lanes.stats": {},
        "lanes.board": {"running_limit": 5},
        "workers.list": {},
        "workers.health": {},
        "workers.register": {"worker_id": "w-prop", "host": "h", "pid": None, "lanes": ["A"],
                             "version": "v", "concurrency": 1, "metadata": None},
        "workers.deregister": {"worker_id": "w-prop", "status": "stopped"},
        "subscribe": {"runs": False, "events": None, "lanes": None, "workers": False,
                      "since": None},
    }


def namespaces() -> dict[str, type]:
    """The client's namespaces (``runs``, ``events``, ...), found on a client, not listed."""
    bare = Client(transport=None)  # type: ignore[arg-type]  # nothing is called
    return {name: type(ns) for name, ns in vars(bare).items() if isinstance(ns, _Namespace)}


NAMESPACES = namespaces()


def public_methods() -> list[str]:
    """Every public method of the client, as ``namespace.method`` (and ``subscribe``)."""
    names = ["subscribe"]
    for ns, cls in NAMESPACES.items():
        names += [f"{ns}.{n}" for n, _ in inspect.getmembers(cls, inspect.isfunction)
                  if not n.startswith("_")]
    return sorted(names)


METHODS = public_methods()


def test_every_public_method_has_base_arguments() -> None:
    """So that a new method is tried too: it fails here until it gets a line in ``_base``."""
    w = World(*([Run.model_construct(id=uuid.uuid4())] * 3))  # type: ignore[arg-type]
    base = _base(w)
    assert sorted(base) == METHODS
    for name in METHODS:
        fn = _bound_function(name)
        params = [p for p in inspect.signature(fn).parameters if p != "self"]
        assert sorted(base[name]) == sorted(params), name


def _bound_function(name: str) -> Callable[..., Any]:
    if name == "subscribe":
        return Client.subscribe
    ns, meth = name.split(".")
    return getattr(NAMESPACES[ns], meth)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def world(env: Env) -> World:
    env.reset()
    client = env.shared_client()
    running, queued, finished = basic_world(client)
    client.artifacts.put(running.id, "a.txt", "inline")
    client.artifacts.put(running.id, "f.bin", b"file")
    return World(running, queued, finished)


def _call_sync(client: Client, name: str, args: dict[str, Any]) -> Any:
    if name == "subscribe":
        sub = client.subscribe(**args)
        sub.close()
        return None
    ns, meth = name.split(".")
    result = getattr(getattr(client, ns), meth)(**args)
    return list(result) if inspect.isgenerator(result) else result


async def _call_async(client: AsyncClient, name: str, args: dict[str, Any]) -> Any:
    if name == "subscribe":
        sub = client.subscribe(**args)
        await sub.aclose()
        return None
    ns, meth = name.split(".")
    result = getattr(getattr(client, ns), meth)(**args)
    if inspect.isasyncgen(result):
        return [x async for x in result]
    return await result


def _check(env: Env, world: World, name: str, replaced: dict[str, Any], use_async: bool) -> None:
    args = {**_base(world)[name], **replaced}
    before = env.state()
    try:
        if use_async:

            async def go() -> Any:
                async with env.aclient() as c:
                    return await _call_async(c, name, args)

            asyncio.run(go())
        else:
            _call_sync(env.shared_client(), name, args)
    except PulserOpsError as e:
        after = env.state()
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        assert after == before, (
            f"{name}({replaced!r:.300}) failed ({e!r:.200}) and changed {', '.join(changed)}: "
            f"{[(k, before.get(k), after.get(k)) for k in changed]!r:.1500}")
    except BaseException as e:  # the property: nothing but PulserOpsError escapes
        pytest.fail(f"{name}({replaced!r:.300}) raised {type(e).__name__}: {e!s:.300}")


def _replacements(name: str) -> st.SearchStrategy[dict[str, Any]]:
    params = sorted(p for p in inspect.signature(_bound_function(name)).parameters
                    if p != "self")
    if not params:
        return st.just({})
    return st.lists(st.sampled_from(params), min_size=1, max_size=min(2, len(params)),
                    unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries({p: hostile for p in chosen}))


_SETTINGS = settings(
    max_examples=EXAMPLES_PER_METHOD,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure here is reproducible
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.mark.parametrize("name", METHODS)
def test_hostile_values_are_refused_cleanly(env: Env, world: World, name: str) -> None:
    @_SETTINGS
    @given(replaced=_replacements(name), use_async=st.booleans())
    def prop(replaced: dict[str, Any], use_async: bool) -> None:
        _check(env, world, name, replaced, use_async)

    prop()


@pytest.mark.parametrize("name", METHODS)
def test_a_list_nested_10000_deep_is_refused_in_every_parameter(
    env: Env, world: World, name: str
) -> None:
    """Each parameter on its own, not left to a draw: the larger profile once found
    ``runs.iter(status=...)`` raising RecursionError (the status enum's error repr'd the value),
    a case the few examples per method had not drawn."""
    for param in inspect.signature(_bound_function(name)).parameters:
        if param != "self":
            _check(env, world, name, {param: DEEP}, use_async=False)


@pytest.mark.slow
def test_hostile_values_are_refused_cleanly_larger_profile(env: Env, world: World) -> None:
    @settings(_SETTINGS, **fuzz.larger(EXAMPLES_SLOW))
    @given(data=st.data(), use_async=st.booleans())
    def prop(data: st.DataObject, use_async: bool) -> None:
        name = data.draw(st.sampled_from(METHODS), label="method")
        replaced = data.draw(_replacements(name), label="replaced")
        _check(env, world, name, replaced, use_async)

    prop()

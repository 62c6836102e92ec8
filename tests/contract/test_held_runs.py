"""``list_held_runs``: the runs running under a worker id, over both transports (a worker asks
after a claim whose reply was lost). Called through the transport, as the worker does."""

from __future__ import annotations

import uuid

import pytest

from pulser_ops import Client, InvalidInput, PermissionDenied, calls
from tests.contract.conftest import Caller, Env
from tests.contract.helpers import template


def test_a_worker_finds_the_runs_it_holds(env: Env, client: Client) -> None:
    template(client)
    client.runs.create_many([{"template": "hello", "params": {"name": str(i)}} for i in range(4)])
    mine = client.runs.claim("w-held", lanes=["A"], limit=2, lease_seconds=60)
    [theirs] = client.runs.claim("w-other", lanes=["A"], limit=1, lease_seconds=60)

    held = client.transport.execute(calls.list_held_runs("w-held"))
    assert sorted(r.id for r in held) == sorted(r.id for r in mine)
    by_id = {r.id: r for r in mine}
    assert all(r == by_id[r.id] for r in held)  # the rows as the claim returned them
    assert [r.id for r in client.transport.execute(calls.list_held_runs("w-other"))] == [
        theirs.id]

    client.runs.complete(mine[0].id, "w-held", 1, "succeeded")
    client.runs.release(mine[1].id, "w-held", 1, reason="stopping")
    assert client.transport.execute(calls.list_held_runs("w-held")) == []
    assert env.sql("select count(*) from public.runs where status = 'running'") == [(1,)]


def test_a_bad_worker_id_is_refused(env: Env, client: Client) -> None:
    with pytest.raises(InvalidInput, match="worker_id"):
        client.transport.execute(calls.list_held_runs(""))


def test_only_the_service_role_may_ask(env: Env, client: Client) -> None:
    template(client)
    client.runs.create("hello", {"name": "x"})
    client.runs.claim("w-held", lanes=["A"])
    with env.client(Caller("operator", str(uuid.uuid4()))) as op, pytest.raises(
        PermissionDenied
    ):
        op.transport.execute(calls.list_held_runs("w-held"))

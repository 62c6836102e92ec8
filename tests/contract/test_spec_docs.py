"""``client.spec_docs``: the worker holding a run's lease saves its documents (one row per path,
linked to the run and its session and owner); operators read their own under RLS."""

from __future__ import annotations

import pytest

from pulser_ops import Client, InvalidInput, LeaseLost, PermissionDenied
from tests.contract.conftest import Caller, Env
from tests.contract.helpers import claimed, new_id, template

DOCS = [
    {"path": "spec/acme/prd.md", "kind": "spec", "title": "Feature Specification: Acme",
     "content": "# Feature Specification: Acme\n"},
    {"path": "spec/acme/tasks.md", "kind": "tasks", "title": "Tasks: Acme", "content": "# Tasks\n"},
]  # fmt: skip


def test_worker_saves_docs_linked_to_run_session_and_owner(env: Env, client: Client) -> None:
    template(client)
    sub = new_id()
    with env.client(Caller("operator", sub)) as op:
        session = op.sessions.create("specs")
        queued = op.runs.create("hello", {"name": "x"}, session_id=session.id)
    [run] = client.runs.claim("w1", lanes=[queued.lane])
    saved = client.spec_docs.put(run.id, "w1", run.attempt, DOCS)
    assert [(d.path, d.kind, d.run_id, d.session_id, str(d.owner_id)) for d in saved] == [
        ("spec/acme/prd.md", "spec", run.id, session.id, sub),
        ("spec/acme/tasks.md", "tasks", run.id, session.id, sub),
    ]
    # a retried save replaces by path: still one row per document
    again = client.spec_docs.put(run.id, "w1", run.attempt, [{**DOCS[0], "content": "v2\n"}])
    assert (again[0].id, again[0].content) == (saved[0].id, "v2\n")
    assert env.sql("select path, content from public.spec_docs order by path") == [
        ("spec/acme/prd.md", "v2\n"), ("spec/acme/tasks.md", "# Tasks\n")]

    with env.client(Caller("operator", sub)) as op:
        mine = op.spec_docs.list(run_id=run.id)
        assert [d.path for d in mine] == ["spec/acme/prd.md", "spec/acme/tasks.md"]
        assert [d.path for d in op.spec_docs.list(session_id=session.id)] == [d.path for d in mine]
    with env.client(Caller("operator", new_id())) as other:
        assert other.spec_docs.list(run_id=run.id) == []  # RLS: not theirs
    assert len(client.spec_docs.list(run_id=run.id, limit=1)) == 1


def test_only_the_lease_holder_and_only_the_service_role_save(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client, "w1")
    before = env.state()
    with pytest.raises(LeaseLost):
        client.spec_docs.put(run.id, "w2", run.attempt, DOCS)
    with pytest.raises(LeaseLost):
        client.spec_docs.put(run.id, "w1", run.attempt + 1, DOCS)
    with env.client(Caller("operator", new_id())) as op, pytest.raises(PermissionDenied):
        op.spec_docs.put(run.id, "w1", run.attempt, DOCS)
    assert env.state() == before


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"path": "../x.md", "kind": "spec", "content": "x"}, "not a safe relative path"),
        ({"path": "/etc/x.md", "kind": "spec", "content": "x"}, "not a safe relative path"),
        ({"path": "a.md", "kind": "Not A Kind", "content": "x"}, "kind"),
        ({"path": "a.md", "kind": "spec", "title": "t" * 201, "content": "x"}, "title"),
    ],
)
def test_bad_docs_are_refused_and_nothing_is_saved(
    env: Env, client: Client, doc: dict[str, str], message: str
) -> None:
    template(client)
    run = claimed(client, "w1")
    before = env.state()
    with pytest.raises(InvalidInput, match=message):
        client.spec_docs.put(run.id, "w1", run.attempt, [DOCS[0], doc])
    assert env.state() == before

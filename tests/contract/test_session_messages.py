"""Sessions as conversations over both transports: messages in order, an operator's own only
(RLS), admins see all, a session's runs as live cards, and artifacts kept per attempt."""

from __future__ import annotations

import pytest

from pulser_ops import Client, InvalidInput, NotFound
from tests.contract.conftest import Caller, Env
from tests.contract.helpers import claimed, new_id, template


def test_messages_persist_in_order_for_their_owner_only(env: Env, client: Client) -> None:
    template(client)
    me, them = Caller("operator", new_id()), Caller("operator", new_id())
    with env.client(me) as op, env.client(them) as other:
        s = op.sessions.create("deploy")
        run = op.runs.create("hello", {"name": "x"}, session_id=s.id)
        posted = op.sessions.post(s.id, [
            {"kind": "command", "body": "run hello name=x"},
            {"kind": "reply", "body": "started", "run_id": run.id, "data": {"template": "hello"}},
        ])  # fmt: skip
        assert [(m.kind, m.body, m.run_id) for m in posted] == [
            ("command", "run hello name=x", None), ("reply", "started", run.id)]
        assert posted[0].id < posted[1].id and str(posted[0].author_id) == me.sub
        assert op.sessions.messages(s.id) == posted  # reopened: the same conversation
        assert op.sessions.messages(s.id, before_id=posted[1].id) == posted[:1]
        assert op.sessions.messages(s.id, limit=1) == posted[1:]
        # another operator sees nothing and may write nothing
        assert other.sessions.messages(s.id) == []
        with pytest.raises(NotFound):  # as if it did not exist: no probing for session ids
            other.sessions.post(s.id, [{"kind": "command", "body": "status"}])
        mine = other.sessions.create("mine")
        with pytest.raises(NotFound):  # a run they cannot see
            other.sessions.post(mine.id, [{"kind": "reply", "body": "x", "run_id": run.id}])
    with env.client(Caller("admin", new_id())) as admin:
        assert [m.id for m in admin.sessions.messages(s.id)] == [m.id for m in posted]
    assert env.sql("select count(*) from public.session_messages") == [(2,)]


def test_bad_messages_are_refused_whole(env: Env, client: Client) -> None:
    s = client.sessions.create("x")
    before = env.state()
    for bad in ([], [{"kind": "shout", "body": "x"}], [{"kind": "reply", "body": 3}],
                [{"kind": "reply", "body": "ok"}, {"kind": "reply", "body": "x", "run_id": "nope"}],
                [{"kind": "reply", "body": "x", "extra": 1}]):  # fmt: skip
        with pytest.raises(InvalidInput):
            client.sessions.post(s.id, bad)
    with pytest.raises(NotFound):
        client.sessions.post(new_id(), [{"kind": "note", "body": "x"}])
    assert env.state() == before


def test_session_runs_are_live_cards_and_summaries_count_them(env: Env, client: Client) -> None:
    template(client)
    s = client.sessions.create("ops")
    other = client.sessions.create("quiet")
    first = client.runs.create("hello", {"name": "a"}, session_id=s.id)
    [held] = client.runs.claim("w1", lanes=["A"])
    client.events.log(held.id, "half <way> there")
    client.artifacts.put(held.id, "out.md", "# hi", attempt=1)
    second = client.runs.create("hello", {"name": "b"}, session_id=s.id)
    client.sessions.post(s.id, [{"kind": "command", "body": "status"}])
    cards = client.sessions.runs(s.id)
    assert [c.run.id for c in cards] == [first.id, second.id]
    assert cards[0].last_event is not None and cards[0].last_event.message == "half <way> there"
    assert [(a.name, a.attempt) for a in cards[0].artifacts] == [("out.md", 1)]
    assert cards[1].artifacts == [] and cards[1].last_event is None
    summary = {x.id: x for x in client.sessions.summaries()}
    assert (summary[s.id].messages, summary[s.id].runs, summary[s.id].active_runs) == (1, 2, 2)
    assert (summary[other.id].messages, summary[other.id].runs) == (0, 0)
    assert next(x.id for x in client.sessions.summaries()) == s.id  # most recently active first


def test_each_attempt_keeps_its_artifacts(env: Env, client: Client) -> None:
    template(client, max_attempts=2)
    run = claimed(client)
    client.artifacts.put(run.id, "report.md", "# attempt one\n", attempt=1)
    client.artifacts.put(run.id, "blob.bin", b"one" * 100, attempt=1)
    client.runs.complete(run.id, "w1", 1, "failed", error="flaky")
    [again] = client.runs.claim("w1", lanes=["A"])
    assert again.attempt == 2
    client.artifacts.put(run.id, "report.md", "# attempt two\n", attempt=2)
    client.artifacts.put(run.id, "blob.bin", b"two" * 100, attempt=2)
    client.artifacts.put(run.id, "report.md", "# attempt two, again\n", attempt=2)  # replaces
    listed = [(a.name, a.attempt) for a in client.artifacts.list(run.id)]
    assert listed == [("blob.bin", 1), ("blob.bin", 2), ("report.md", 1), ("report.md", 2)]
    assert client.artifacts.download(run.id, "report.md") == b"# attempt two, again\n"
    assert client.artifacts.download(run.id, "report.md", attempt=1) == b"# attempt one\n"
    assert client.artifacts.download(run.id, "blob.bin", attempt=1) == b"one" * 100
    assert client.artifacts.download(run.id, "blob.bin") == b"two" * 100
    stored = client.artifacts.get(run.id, "blob.bin", attempt=1)
    assert stored.storage_path == f"{run.id}/1/blob.bin"
    assert client.artifacts.head(stored, 5) == b"oneon"
    assert client.artifacts.head(client.artifacts.get(run.id, "report.md"), 8) == b"# attemp"
    with pytest.raises(NotFound, match="attempt 3"):
        client.artifacts.get(run.id, "report.md", attempt=3)

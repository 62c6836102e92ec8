"""Issue 20 on both transports: deleting a session, artifact names any Storage takes, the claim
order within a batch and after a sweep, and a resent failure that scheduled a retry."""

from __future__ import annotations

import uuid

import pytest

from pulser_ops import Client, Conflict, InvalidInput, NotFound
from pulser_ops.files import STORAGE_KEY_CHARS, storage_key
from tests.contract.conftest import Caller, Env
from tests.contract.helpers import claimed, fetch, template

ALICE = Caller("operator", str(uuid.uuid4()))
BOB = Caller("operator", str(uuid.uuid4()))
ADMIN = Caller("admin", str(uuid.uuid4()))


# --- deleting a session ----------------------------------------------------------------------


def test_a_session_whose_runs_finished_is_deleted_and_its_runs_stay(
    env: Env, client: Client
) -> None:
    template(client)
    alice = env.shared_client(ALICE)
    session = alice.sessions.create("to go")
    runs = [alice.runs.create("hello", {"name": str(i)}, session_id=session.id) for i in range(3)]
    env.sql("insert into public.spec_docs (session_id, owner_id, title) values (%s, %s, 'doc')",
            (session.id, ALICE.sub))

    with pytest.raises(Conflict) as busy:
        alice.sessions.delete(session.id)
    assert "3 unfinished run(s)" in str(busy.value)
    assert busy.value.detail_json() == {"unfinished_runs": 3}

    for r in runs:
        alice.runs.cancel(r.id)
    gone = alice.sessions.delete(session.id)

    assert (gone.session_id, gone.runs_detached, gone.spec_docs_deleted) == (session.id, 3, 1)
    assert alice.sessions.list() == []
    after = alice.runs.get_many([r.id for r in runs])
    assert [(r.status, r.session_id) for r in after] == [("cancelled", None)] * 3
    assert env.sql("select count(*) from public.spec_docs")[0][0] == 0
    with pytest.raises(NotFound):
        alice.sessions.delete(session.id)


def test_only_the_owner_or_an_admin_deletes_a_session(env: Env, client: Client) -> None:
    alice_session = env.shared_client(ALICE).sessions.create("alice's")
    with pytest.raises(NotFound):
        env.shared_client(BOB).sessions.delete(alice_session.id)
    assert env.shared_client(ADMIN).sessions.delete(alice_session.id).runs_detached == 0
    service_session = client.sessions.create("the service role's")
    assert client.sessions.delete(service_session.id).session_id == service_session.id


# --- artifact names -----------------------------------------------------------------------------

#: Names real Supabase Storage refuses as keys (supabase-fidelity.md #2), and the escape itself.
AWKWARD = ["ünï.txt", "b[1].txt", "50%.txt", "h#x.txt", "t~x.txt", "a*b.txt", "dir/é {x}.log",
           "q?.txt", "🚀.bin"]


@pytest.mark.parametrize("name", AWKWARD)
def test_any_safe_name_is_stored_the_same_on_both_transports(
    env: Env, client: Client, name: str
) -> None:
    template(client)
    run = claimed(client)
    data = f"content of {name}".encode()

    art = client.artifacts.put(run.id, name, data)

    key = f"{run.id}/0/{storage_key(name)}"  # in the folder of its attempt (0: none given)
    assert (art.name, art.storage_path, art.size_bytes) == (name, key, len(data))
    assert STORAGE_KEY_CHARS.match(key), key
    assert client.artifacts.download(run.id, name) == data
    assert fetch(client.artifacts.signed_url(run.id, name)) == data
    assert [a.name for a in client.artifacts.list(run.id)] == [name]
    if env.sb is not None:
        assert env.sql("select name from storage.objects where bucket_id = 'run-artifacts'"
                       " and name like %s", (f"{run.id}/%",)) == [(key,)]
    else:
        assert (env.storage_dir / "run-artifacts" / key).read_bytes() == data
    # inline text under the same name, then the file again: the row is replaced, not doubled
    assert client.artifacts.put(run.id, name, "inline now").is_inline
    assert client.artifacts.download(run.id, name) == b"inline now"
    assert client.runs.delete([]) == 0


def test_names_are_limited_in_bytes(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client)
    longest = "n" * 251 + ".bin"  # 255 bytes: a file name a local disk takes too
    assert client.artifacts.put(run.id, longest, b"x").storage_path == f"{run.id}/0/{longest}"
    with pytest.raises(InvalidInput, match="at most 255 bytes"):
        client.artifacts.put(run.id, "🚀" * 100, b"x")  # 100 characters, 400 bytes
    with pytest.raises(InvalidInput, match="255"):
        client.artifacts.put(run.id, "é" * 100, b"x")  # 200 bytes; its key would be 600


def test_a_file_store_refuses_a_key_storage_would_refuse(env: Env, client: Client) -> None:
    """The same rule on both stores: a raw key must already be a valid Storage key."""
    with pytest.raises(InvalidInput, match="valid object key"):
        client.transport.files.put(f"{uuid.uuid4()}/ünï.txt", b"x", "text/plain")


# --- claim order ------------------------------------------------------------------------------


def test_one_batch_is_claimed_first_in_first_out_and_a_swept_run_keeps_its_place(
    env: Env, client: Client
) -> None:
    template(client)
    batch = client.runs.create_many([{"template": "hello", "params": {"name": str(i)}}
                                     for i in range(40)])
    assert len({r.created_at for r in batch}) == 1  # one created_at for the whole batch
    first = [client.runs.claim("w1", lanes="A")[0] for _ in range(10)]
    assert [r.id for r in first] == [r.id for r in batch[:10]]

    env.sql("update public.runs set lease_expires_at = now() - interval '1 second'"
            " where id = %s", (batch[0].id,))
    assert [s.run_id for s in client.runs.sweep()] == [batch[0].id]

    again = client.runs.claim("w1", lanes="A", limit=3)
    assert [r.id for r in again] == [batch[0].id, batch[10].id, batch[11].id]


# --- a resent failure that scheduled a retry -------------------------------------------------


def test_a_resent_failure_that_scheduled_a_retry_is_answered_as_recorded(
    env: Env, client: Client
) -> None:
    template(client, max_attempts=3)
    run = claimed(client)
    completion = {"run_id": run.id, "attempt": 1, "status": "failed", "error": "boom",
                  "events": [{"kind": "log", "message": "the last line"}]}
    [first] = client.runs.complete_many("w1", [completion])
    assert (first.ok, first.status) == (True, "queued")
    events = len(client.events.list(run.id))

    [again] = client.runs.complete_many("w1", [completion])
    assert again == first
    assert client.runs.complete(run.id, "w1", 1, "failed", error="boom").status == "queued"
    assert len(client.events.list(run.id)) == events  # nothing written twice

    client.runs.claim("w2", lanes="A")  # attempt 2 is under way
    [still] = client.runs.complete_many("w1", [completion])
    assert (still.ok, still.status, still.retry_at) == (True, "queued", first.retry_at)
    [other] = client.runs.complete_many("w2", [{**completion, "attempt": 1}])
    assert not other.ok and other.status == "running"

"""``client.events`` and ``client.artifacts`` over both transports (files: a local directory
next to PostgreSQL, Supabase Storage behind the stand-in)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pulser_ops import Client, InvalidInput
from pulser_ops.artifacts import INLINE_LIMIT
from tests.contract.conftest import Env
from tests.contract.helpers import claimed, fetch, template


def test_events_append_log_list(env: Env, client: Client) -> None:
    template(client)
    run = client.runs.create("hello", {"name": "x"})
    [a, b] = client.events.append([
        {"run_id": run.id, "kind": "log", "message": "one", "level": "debug"},
        {"run_id": run.id, "kind": "app.step", "message": "two", "data": {"n": 2}},
    ])
    c = client.events.log(run.id, "three", level="warn", data=[1, 2])
    assert [(e.seq, e.kind, e.level, e.message) for e in (a, b, c)] == [
        (1, "log", "debug", "one"), (2, "app.step", "info", "two"), (3, "log", "warn", "three")]
    assert (b.data, c.data) == ({"n": 2}, [1, 2])
    assert client.events.list(run.id) == [a, b, c]
    assert client.events.list(run.id, after_seq=1, limit=1) == [b]
    assert env.sql("select seq, message from public.run_events order by seq") == [
        (1, "one"), (2, "two"), (3, "three")]


def test_inline_text_artifact(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client)
    art = client.artifacts.put(run.id, "notes/summary.md", "# done\n", attempt=1,
                               metadata={"by": "test"})
    assert art.is_inline and art.storage_path is None
    assert (art.kind, art.size_bytes, art.attempt, art.metadata) == ("text", 7, 1, {"by": "test"})
    assert art.content_type.startswith("text/markdown")
    assert art.sha256 == hashlib.sha256(b"# done\n").hexdigest()
    assert client.artifacts.get(run.id, "notes/summary.md") == art
    assert client.artifacts.download(run.id, "notes/summary.md") == b"# done\n"
    with pytest.raises(InvalidInput) as err:
        client.artifacts.signed_url(run.id, "notes/summary.md")
    assert err.value.code == "invalid_input"
    assert env.sql("select inline_text, storage_path from public.artifacts") == [
        ("# done\n", None)]


def test_big_text_bytes_and_path_go_to_files(env: Env, client: Client, tmp_path: Path) -> None:
    template(client)
    run = claimed(client)
    big = "x" * (INLINE_LIMIT + 1)
    blob = bytes(range(256)) * 10
    src = tmp_path / "report.json"
    src.write_bytes(b'{"ok": true}')

    text_art = client.artifacts.put(run.id, "big.txt", big)
    bytes_art = client.artifacts.put(run.id, "bin/blob.dat", blob)
    path_art = client.artifacts.put(run.id, "report.json", src, kind="json")
    for art, raw in ((text_art, big.encode()), (bytes_art, blob), (path_art, src.read_bytes())):
        assert not art.is_inline
        assert art.storage_path == f"{run.id}/0/{art.name}"  # attempt 0: none given
        assert art.storage_bucket == "run-artifacts"
        assert (art.size_bytes, art.sha256) == (len(raw), hashlib.sha256(raw).hexdigest())
        assert client.artifacts.download(run.id, art.name) == raw
        assert fetch(client.artifacts.signed_url(run.id, art.name, expires_in=60)) == raw
    assert (text_art.kind, bytes_art.kind, path_art.kind) == ("text", "file", "json")
    assert bytes_art.content_type == "application/octet-stream"
    assert path_art.content_type == "application/json"
    assert sorted(a.name for a in client.artifacts.list(run.id)) == [
        "big.txt", "bin/blob.dat", "report.json"]
    stored = env.state()
    assert len([p for p, _ in stored["files"] if str(run.id) in p]) == 3

    # Re-putting a name replaces the row and the file.
    again = client.artifacts.put(run.id, "bin/blob.dat", b"new")
    assert again.id == bytes_art.id and again.size_bytes == 3
    assert client.artifacts.download(run.id, "bin/blob.dat") == b"new"
    assert env.sql("select count(*) from public.artifacts") == [(3,)]


async def test_async_events_and_artifacts(env: Env, client: Client, tmp_path: Path) -> None:
    template(client)
    run = claimed(client)
    src = tmp_path / "a.bin"
    src.write_bytes(b"\x01\x02")
    async with env.aclient() as ac:
        [ev] = await ac.events.append([{"run_id": run.id, "kind": "log", "message": "hi"}])
        logged = await ac.events.log(run.id, "again")
        assert [e.seq for e in await ac.events.list(run.id)] == [1, 2, 3]  # claimed, hi, again
        assert (ev.seq, logged.seq) == (2, 3)
        inline = await ac.artifacts.put(run.id, "a.txt", "hello")
        big = await ac.artifacts.put(run.id, "big.txt", "y" * (INLINE_LIMIT + 10))
        raw = await ac.artifacts.put(run.id, "raw.bin", b"\xff")
        path = await ac.artifacts.put(run.id, "a.bin", src)
        assert inline.is_inline and not big.is_inline and not raw.is_inline
        assert await ac.artifacts.get(run.id, "a.bin") == path
        assert {a.name for a in await ac.artifacts.list(run.id)} == {
            "a.txt", "big.txt", "raw.bin", "a.bin"}
        assert await ac.artifacts.download(run.id, "a.txt") == b"hello"
        assert await ac.artifacts.download(run.id, "raw.bin") == b"\xff"
        url = await ac.artifacts.signed_url(run.id, "a.bin")
        assert fetch(url) == b"\x01\x02"
    assert env.sql("select count(*) from public.artifacts where storage_path is not null") == [
        (3,)]

"""The Supabase stand-in (tests/standin) driven by the REAL supabase-py clients.

Every test talks HTTP/WebSocket to the stand-in, which talks to a real
PostgreSQL cluster (the shared ``pg_cluster`` fixture: logical WAL, wal2json).
The database gets the project's plain-Postgres bootstrap (roles, auth.*,
storage.*, the supabase_realtime publication) plus the scratch objects below.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from postgrest.exceptions import APIError
from realtime.types import RealtimeSubscribeStates
from storage3.exceptions import StorageApiError
from supabase import AsyncClientOptions, ClientOptions, acreate_client, create_client

from tests.standin import StandIn
from tests.standin.auth import sign
from tests.support.pgcluster import PgCluster
from tests.support.standins import scratch_database

SECRET = "standin-test-secret-with-at-least-32-bytes!"
USER_A = str(uuid.uuid4())
USER_B = str(uuid.uuid4())

SCRATCH_SQL = """
create table public.items (
  id int primary key,
  owner uuid,
  label text,
  payload jsonb default '{}'::jsonb,
  tags text[] default '{}'
);
alter table public.items enable row level security;
create policy items_own on public.items for select to authenticated using (owner = auth.uid());
grant select, insert, update, delete on public.items to authenticated, service_role;
alter publication supabase_realtime add table public.items;

create table public.unpublished (id int primary key, note text);
grant all on public.unpublished to service_role;

create function public.add(a int, b int default 10) returns int
  language sql immutable as 'select a + b';
create function public.make_item(id int, label text) returns public.items
  language sql stable as $$ select id, null::uuid, label, '{"k": 1}'::jsonb, '{x,y}'::text[] $$;
create function public.series(n int) returns setof int
  language sql stable as 'select generate_series(1, n)';
create function public.squares(n int) returns table (i int, sq int)
  language sql stable as 'select g, g * g from generate_series(1, n) g';
create function public.touch_items(label text) returns void
  language sql volatile as $$ update public.items set label = touch_items.label where id < 0 $$;
create function public.write_it() returns int
  language plpgsql volatile as
  $$ begin insert into public.unpublished values (1, 'x'); return 1; end $$;
-- STABLE, so PostgREST runs it READ ONLY even over POST: the nested write fails.
create function public.write_while_stable() returns int
  language sql stable as 'select public.write_it()';
create function public.whoami() returns jsonb language sql stable as
  $$ select jsonb_build_object('user', current_user, 'sub', auth.jwt() ->> 'sub',
                               'method', current_setting('request.method', true)) $$;
create function public.fail(code text, msg text) returns int language plpgsql as $$
begin
  raise exception using errcode = code, message = msg, detail = 'the detail', hint = 'the hint';
end $$;
create function public.only_service() returns int language sql as 'select 1';
revoke execute on function public.only_service() from public;
grant execute on function public.only_service() to service_role;

insert into storage.buckets (id, name, public) values ('files', 'files', false),
                                                     ('pub', 'pub', true);
create policy own_read on storage.objects for select to authenticated
  using (bucket_id = 'files' and (storage.foldername(name))[1] = auth.jwt() ->> 'sub');
create policy own_insert on storage.objects for insert to authenticated
  with check (bucket_id = 'files' and (storage.foldername(name))[1] = auth.jwt() ->> 'sub');
create policy own_update on storage.objects for update to authenticated
  using (bucket_id = 'files' and (storage.foldername(name))[1] = auth.jwt() ->> 'sub');
create policy own_delete on storage.objects for delete to authenticated
  using (bucket_id = 'files' and (storage.foldername(name))[1] = auth.jwt() ->> 'sub');
"""


@pytest.fixture(scope="module")
def standin_db(pg_cluster: PgCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, prefix="standin", sql=SCRATCH_SQL) as url:
        yield url


@pytest.fixture(scope="module")
def sb(standin_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    with StandIn(standin_db, SECRET, tmp_path_factory.mktemp("standin-storage")) as standin:
        yield standin


def user_client(sb: StandIn, sub: str) -> Any:
    token = sb.user_token(sub)
    return create_client(sb.url, sb.anon_key,
                         ClientOptions(headers={"Authorization": f"Bearer {token}"}))


# --------------------------------------------------------------------------- RPC
def test_rpc_response_shapes(sb: StandIn) -> None:
    client = create_client(sb.url, sb.service_key)
    assert client.rpc("add", {"a": 2}).execute().data == 12
    assert client.rpc("add", {"a": 2, "b": 3}).execute().data == 5
    assert client.rpc("make_item", {"id": 7, "label": "x"}).execute().data == {
        "id": 7, "owner": None, "label": "x", "payload": {"k": 1}, "tags": ["x", "y"]}
    assert client.rpc("series", {"n": 3}).execute().data == [1, 2, 3]
    assert client.rpc("series", {"n": 0}).execute().data == []
    assert client.rpc("squares", {"n": 2}).execute().data == [
        {"i": 1, "sq": 1}, {"i": 2, "sq": 4}]
    # GET with query parameters for a non-volatile function
    assert client.rpc("add", {"a": 1, "b": 1}, get=True).execute().data == 2


def test_rpc_void_is_204_and_volatile_runs_read_write(sb: StandIn) -> None:
    headers = {"apikey": sb.service_key, "Authorization": f"Bearer {sb.service_key}"}
    res = httpx.post(f"{sb.url}/rest/v1/rpc/touch_items", json={"label": "z"}, headers=headers)
    assert res.status_code == 204
    assert res.content == b""
    client = create_client(sb.url, sb.service_key)
    assert client.rpc("touch_items", {"label": "z"}).execute().data == []


def test_rpc_read_only_transaction_for_stable_functions(sb: StandIn) -> None:
    client = create_client(sb.url, sb.service_key)
    with pytest.raises(APIError) as err:
        client.rpc("write_while_stable", {}).execute()
    assert err.value.code == "25006"
    headers = {"apikey": sb.service_key}
    res = httpx.post(f"{sb.url}/rest/v1/rpc/write_while_stable", json={}, headers=headers)
    assert res.status_code == 405
    assert res.headers["proxy-status"] == "PostgREST; error=25006"
    # GET always runs READ ONLY, even for a volatile function
    with pytest.raises(APIError) as err:
        client.rpc("touch_items", {"label": "z"}, get=True).execute()
    assert err.value.code == "25006"


def test_rpc_unknown_function_or_arguments_is_pgrst202(sb: StandIn) -> None:
    client = create_client(sb.url, sb.service_key)
    with pytest.raises(APIError) as err:
        client.rpc("no_such_function", {}).execute()
    assert err.value.code == "PGRST202"
    with pytest.raises(APIError) as err:
        client.rpc("add", {"a": 1, "zzz": 2}).execute()
    assert err.value.code == "PGRST202"
    with pytest.raises(APIError) as err:
        client.rpc("add", {"b": 1}).execute()  # required argument missing
    assert err.value.code == "PGRST202"
    res = httpx.post(f"{sb.url}/rest/v1/rpc/no_such_function", json={},
                     headers={"apikey": sb.service_key})
    assert res.status_code == 404


@pytest.mark.parametrize(
    ("sqlstate", "status"),
    # PostgREST v14.12 ``pgErrorStatus``, one row per case of its table
    [("P0001", 400), ("P0002", 500), ("23505", 409), ("23503", 409), ("22023", 400),
     ("42P01", 404), ("08006", 503), ("53300", 503), ("53400", 500), ("40001", 500),
     ("57014", 500), ("28000", 403), ("PT402", 402), ("XX001", 500), ("XX000", 500),
     ("09000", 500), ("0L000", 403), ("0P000", 403), ("21000", 500), ("25001", 500),
     ("25006", 405), ("2D000", 500), ("38000", 500), ("39000", 500), ("3B000", 500),
     ("42P17", 500), ("54000", 500), ("55P03", 500), ("57P01", 503), ("58000", 500),
     ("F0000", 500), ("HV000", 500), ("42883", 404), ("42501", 403), ("PTXYZ", 500),
     ("22000", 400), ("23514", 400)],
)
def test_rpc_error_mapping(sb: StandIn, sqlstate: str, status: int) -> None:
    client = create_client(sb.url, sb.service_key)
    with pytest.raises(APIError) as err:
        client.rpc("fail", {"code": sqlstate, "msg": f"boom {sqlstate}"}).execute()
    assert err.value.code == sqlstate
    assert err.value.message == f"boom {sqlstate}"
    assert err.value.details == "the detail"
    assert err.value.hint == "the hint"
    res = httpx.post(f"{sb.url}/rest/v1/rpc/fail", json={"code": sqlstate, "msg": "m"},
                     headers={"apikey": sb.service_key})
    assert res.status_code == status
    assert res.headers["proxy-status"] == f"PostgREST; error={sqlstate}"


def test_rpc_invalid_argument_value_is_a_postgres_error(sb: StandIn) -> None:
    client = create_client(sb.url, sb.service_key)
    with pytest.raises(APIError) as err:
        client.rpc("add", {"a": "not a number"}).execute()
    assert err.value.code == "22P02"


def test_role_and_claims_come_from_the_jwt(sb: StandIn) -> None:
    service = create_client(sb.url, sb.service_key).rpc("whoami", {}).execute().data
    assert service == {"user": "service_role", "sub": None, "method": "POST"}
    anon: Any = create_client(sb.url, sb.anon_key).rpc("whoami", {}).execute().data
    assert anon["user"] == "anon"
    user = user_client(sb, USER_A).rpc("whoami", {}).execute().data
    assert user == {"user": "authenticated", "sub": USER_A, "method": "POST"}


def test_permission_denied_is_401_for_anon_and_403_for_users(sb: StandIn) -> None:
    with pytest.raises(APIError) as err:
        user_client(sb, USER_A).rpc("only_service", {}).execute()
    assert err.value.code == "42501"
    anon = httpx.post(f"{sb.url}/rest/v1/rpc/only_service", json={},
                      headers={"apikey": sb.anon_key})
    assert (anon.status_code, anon.json()["code"]) == (401, "42501")
    token = sb.user_token(USER_A)
    user = httpx.post(f"{sb.url}/rest/v1/rpc/only_service", json={},
                      headers={"apikey": sb.anon_key, "Authorization": f"Bearer {token}"})
    assert user.status_code == 403
    assert create_client(sb.url, sb.service_key).rpc("only_service", {}).execute().data == 1


def test_invalid_jwt_is_pgrst301(sb: StandIn) -> None:
    bad = sign("some-other-secret-that-is-long-enough-xx",
               {"role": "authenticated", "sub": USER_A})
    client = create_client(sb.url, sb.anon_key,
                           ClientOptions(headers={"Authorization": f"Bearer {bad}"}))
    with pytest.raises(APIError) as err:
        client.rpc("whoami", {}).execute()
    assert err.value.code == "PGRST301"
    res = httpx.post(f"{sb.url}/rest/v1/rpc/whoami", json={},
                     headers={"apikey": sb.anon_key, "Authorization": f"Bearer {bad}"})
    assert res.status_code == 401
    expired = sb.user_token(USER_A, ttl_seconds=-60)
    with pytest.raises(APIError) as err:
        create_client(sb.url, sb.anon_key, ClientOptions(
            headers={"Authorization": f"Bearer {expired}"})).rpc("whoami", {}).execute()
    assert err.value.code == "PGRST303"


def test_only_the_public_schema_is_exposed(sb: StandIn) -> None:
    with pytest.raises(APIError) as err:
        create_client(sb.url, sb.service_key).schema("storage").rpc("foldername", {}).execute()
    assert err.value.code == "PGRST106"


def test_table_reads_apply_filters_and_rls(sb: StandIn, standin_db: str) -> None:
    with psycopg.connect(standin_db, autocommit=True) as conn:
        conn.execute("insert into public.items (id, owner, label) values"
                     " (101, %s, 'a'), (102, %s, 'b'), (103, %s, 'c')",
                     (USER_A, USER_A, USER_B))
    try:
        service = create_client(sb.url, sb.service_key)
        rows = (service.table("items").select("id,label").in_("id", [101, 102, 103])
                .order("id", desc=True).limit(2).execute().data)
        assert rows == [{"id": 103, "label": "c"}, {"id": 102, "label": "b"}]
        mine = (user_client(sb, USER_A).table("items").select("id").gte("id", 101)
                .lte("id", 103).order("id").execute().data)
        assert mine == [{"id": 101}, {"id": 102}]
    finally:
        with psycopg.connect(standin_db, autocommit=True) as conn:
            conn.execute("delete from public.items where id in (101, 102, 103)")


# ----------------------------------------------------------------------- Storage
def test_storage_upload_download_and_rls(sb: StandIn) -> None:
    a = user_client(sb, USER_A).storage.from_("files")
    b = user_client(sb, USER_B).storage.from_("files")
    res = a.upload(f"{USER_A}/hello.txt", b"hello world",
                   {"content-type": "text/plain"})
    assert res.path == f"{USER_A}/hello.txt"
    assert a.download(f"{USER_A}/hello.txt") == b"hello world"
    assert a.exists(f"{USER_A}/hello.txt")
    assert a.info(f"{USER_A}/hello.txt")["size"] == 11

    with pytest.raises(StorageApiError) as err:  # B cannot see A's object
        b.download(f"{USER_A}/hello.txt")
    assert (str(err.value.status), err.value.code) == ("404", "not_found")
    assert not b.exists(f"{USER_A}/hello.txt")

    with pytest.raises(StorageApiError) as err:  # nor write into A's folder
        b.upload(f"{USER_A}/evil.txt", b"x")
    assert str(err.value.status) == "403"

    with pytest.raises(StorageApiError) as err:  # no upsert by default
        a.upload(f"{USER_A}/hello.txt", b"again")
    assert (str(err.value.status), err.value.code) == ("409", "Duplicate")
    a.upload(f"{USER_A}/hello.txt", b"again", {"upsert": "true"})
    assert a.download(f"{USER_A}/hello.txt") == b"again"

    service = create_client(sb.url, sb.service_key).storage.from_("files")
    assert service.download(f"{USER_A}/hello.txt") == b"again"  # service_role bypasses RLS


def test_storage_signed_urls(sb: StandIn) -> None:
    a = user_client(sb, USER_A).storage.from_("files")
    a.upload(f"{USER_A}/signed.bin", b"\x00\x01secret", {"content-type": "application/x-b"})
    url = a.create_signed_url(f"{USER_A}/signed.bin", 60)["signedURL"]
    got = httpx.get(url)  # no credentials: the token is the authorisation
    assert got.status_code == 200
    assert got.content == b"\x00\x01secret"
    assert got.headers["content-type"].startswith("application/x-b")
    tampered = url.replace("signed.bin", "other.bin")
    assert httpx.get(tampered).status_code == 400

    b = user_client(sb, USER_B).storage.from_("files")
    with pytest.raises(StorageApiError):  # B may not sign A's object
        b.create_signed_url(f"{USER_A}/signed.bin", 60)

    up = a.create_signed_upload_url(f"{USER_A}/via-token.txt")
    anon = create_client(sb.url, sb.anon_key).storage.from_("files")
    anon.upload_to_signed_url(up["path"], up["token"], b"uploaded with a token")
    assert a.download(f"{USER_A}/via-token.txt") == b"uploaded with a token"
    with pytest.raises(StorageApiError):  # B cannot get an upload URL for A's folder
        b.create_signed_upload_url(f"{USER_A}/nope.txt")


def test_storage_list_and_remove(sb: StandIn) -> None:
    a = user_client(sb, USER_A).storage.from_("files")
    folder = f"{USER_A}/listing"
    for name in ("b.txt", "a.txt", "sub/c.txt"):
        a.upload(f"{folder}/{name}", name.encode())
    entries = a.list(folder)
    assert [e["name"] for e in entries] == ["a.txt", "b.txt", "sub"]
    assert entries[2]["id"] is None  # a folder
    assert [e["name"] for e in a.list(folder, {"limit": 1, "offset": 1})] == ["b.txt"]
    b = user_client(sb, USER_B).storage.from_("files")
    assert b.list(folder) == []
    assert b.remove([f"{folder}/a.txt"]) == []  # RLS: nothing B may delete
    removed = a.remove([f"{folder}/a.txt", f"{folder}/sub/c.txt"])
    assert sorted(r["name"] for r in removed) == [f"{folder}/a.txt", f"{folder}/sub/c.txt"]
    assert [e["name"] for e in a.list(folder)] == ["b.txt"]
    with pytest.raises(StorageApiError):
        a.download(f"{folder}/a.txt")


async def test_storage_async_client(sb: StandIn) -> None:
    client = await acreate_client(sb.url, sb.anon_key, AsyncClientOptions(
        headers={"Authorization": f"Bearer {sb.user_token(USER_B)}"}))
    bucket = client.storage.from_("files")
    await bucket.upload(f"{USER_B}/async.json", b'{"a": 1}', {"content-type": "application/json"})
    assert await bucket.download(f"{USER_B}/async.json") == b'{"a": 1}'
    signed = await bucket.create_signed_url(f"{USER_B}/async.json", 30)
    async with httpx.AsyncClient() as http:
        got = await http.get(signed["signedURL"])
    assert (got.status_code, got.json()) == (200, {"a": 1})
    up = await bucket.create_signed_upload_url(f"{USER_B}/async-up.txt")
    await bucket.upload_to_signed_url(up["path"], up["token"], b"tok")
    assert [e["name"] for e in await bucket.list(USER_B)] == ["async-up.txt", "async.json"]
    removed = await bucket.remove([f"{USER_B}/async.json", f"{USER_B}/async-up.txt"])
    assert len(removed) == 2
    assert not await bucket.exists(f"{USER_B}/async.json")


def test_storage_rejects_path_traversal(sb: StandIn) -> None:
    headers = {"apikey": sb.service_key, "Authorization": f"Bearer {sb.service_key}"}
    res = httpx.post(f"{sb.url}/storage/v1/object/files/{USER_A}/%2E%2E/escape.txt",
                     content=b"x", headers=headers)
    assert res.status_code == 400
    assert res.json()["code"] == "InvalidKey"


# ---------------------------------------------------------------------- Realtime
async def _subscribe(client: Any, topic: str, events: asyncio.Queue[Any],
                     states: asyncio.Queue[Any], readies: asyncio.Queue[Any] | None = None,
                     **binding: Any) -> Any:
    channel = client.channel(topic)
    channel.on_postgres_changes(binding.pop("event", "*"), events.put_nowait,
                                schema="public", table="items", **binding)
    readies = asyncio.Queue() if readies is None else readies
    channel.on_system(lambda p: readies.put_nowait(p.message)
                      if p.message == "Subscribed to PostgreSQL" else None)
    await channel.subscribe(lambda state, _err: states.put_nowait(state))
    assert await asyncio.wait_for(states.get(), 20) == RealtimeSubscribeStates.SUBSCRIBED
    # Like the real server, the change feed is live only from the system "ready" message.
    await asyncio.wait_for(readies.get(), 20)
    return channel


async def test_realtime_insert_update_delete(sb: StandIn, standin_db: str) -> None:
    client = await acreate_client(sb.url, sb.service_key)
    events: asyncio.Queue[Any] = asyncio.Queue()
    states: asyncio.Queue[Any] = asyncio.Queue()
    await _subscribe(client, "svc", events, states)
    try:
        async with await psycopg.AsyncConnection.connect(standin_db, autocommit=True) as conn:
            await conn.execute("insert into public.unpublished values (1, 'not delivered')")
            await conn.execute("""insert into public.items (id, owner, label, payload, tags)
                                  values (1, %s, 'first', '{"n": 1}', '{p,q}')""", (USER_A,))
            await conn.execute("update public.items set label = 'second' where id = 1")
            await conn.execute("delete from public.items where id = 1")
        ins = (await asyncio.wait_for(events.get(), 20))["data"]
        assert ins["type"] == "INSERT"
        assert (ins["schema"], ins["table"]) == ("public", "items")
        assert ins["record"] == {"id": 1, "owner": USER_A, "label": "first",
                                 "payload": {"n": 1}, "tags": ["p", "q"]}
        assert ins["errors"] is None
        assert {"name": "payload", "type": "jsonb"} in ins["columns"]
        assert ins["commit_timestamp"].endswith("Z")
        upd = (await asyncio.wait_for(events.get(), 20))["data"]
        assert (upd["type"], upd["record"]["label"]) == ("UPDATE", "second")
        assert upd["old_record"] == {"id": 1}
        dele = (await asyncio.wait_for(events.get(), 20))["data"]
        assert dele["type"] == "DELETE"
        assert dele["old_record"] == {"id": 1}
        assert "record" not in dele
    finally:
        await client.realtime.remove_all_channels()


async def test_realtime_respects_rls_and_filters(sb: StandIn, standin_db: str) -> None:
    client = await acreate_client(sb.url, sb.anon_key)
    await client.realtime.set_auth(sb.user_token(USER_A))
    events: asyncio.Queue[Any] = asyncio.Queue()
    states: asyncio.Queue[Any] = asyncio.Queue()
    await _subscribe(client, "mine", events, states, event="INSERT", filter="label=in.(hi,yo)")
    try:
        async with await psycopg.AsyncConnection.connect(standin_db, autocommit=True) as conn:
            for row_id, owner, label in [(11, USER_B, "hi"), (12, USER_A, "nope"),
                                         (13, USER_A, "yo")]:
                await conn.execute("insert into public.items (id, owner, label)"
                                   " values (%s, %s, %s)", (row_id, owner, label))
        first = (await asyncio.wait_for(events.get(), 20))["data"]
        # Changes are delivered in commit order, so rows 11 and 12 (not visible /
        # not matching) would have arrived before row 13 had they been sent.
        assert first["record"]["id"] == 13
        assert events.empty()
    finally:
        await client.realtime.remove_all_channels()
        async with await psycopg.AsyncConnection.connect(standin_db, autocommit=True) as conn:
            await conn.execute("delete from public.items where id in (11, 12, 13)")


async def test_realtime_resubscribes_after_dropped_connections(
        sb: StandIn, standin_db: str) -> None:
    client = await acreate_client(
        sb.url, sb.service_key,
        AsyncClientOptions(realtime={"auto_reconnect": True, "initial_backoff": 0.1}))
    events: asyncio.Queue[Any] = asyncio.Queue()
    states: asyncio.Queue[Any] = asyncio.Queue()
    readies: asyncio.Queue[Any] = asyncio.Queue()
    await _subscribe(client, "drop", events, states, readies, event="INSERT")
    joins = sb.realtime_joins
    try:
        dropped = await asyncio.to_thread(sb.drop_realtime_connections)
        assert dropped >= 1
        assert await asyncio.wait_for(states.get(), 20) == RealtimeSubscribeStates.CHANNEL_ERROR
        assert await asyncio.wait_for(states.get(), 20) == RealtimeSubscribeStates.SUBSCRIBED
        assert sb.realtime_joins > joins
        await asyncio.wait_for(readies.get(), 20)
        async with await psycopg.AsyncConnection.connect(standin_db, autocommit=True) as conn:
            await conn.execute("insert into public.items (id, label) values (21, 'after')")
        ev = (await asyncio.wait_for(events.get(), 20))["data"]
        assert (ev["type"], ev["record"]["id"]) == ("INSERT", 21)
    finally:
        await client.realtime.remove_all_channels()
        async with await psycopg.AsyncConnection.connect(standin_db, autocommit=True) as conn:
            await conn.execute("delete from public.items where id = 21")

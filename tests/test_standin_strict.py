"""The stand-in is as strict as the real services where leniency let the SDK pass here and fail
on Supabase (docs: /work/shared/reference/supabase-fidelity.md, items 1-11 of its list).

Each test shows one rule with a plain HTTP or WebSocket client (httpx, websockets), so what is
checked is the wire, not what a client library makes of it:

- PostgREST ``max_rows`` with ``Content-Range``, 206, 416, offset and limit on RPC results;
- Supabase's statement and lock timeouts for the API roles;
- the API gateway: a codeless 401 for a missing or unknown apikey, the new ``sb_`` keys;
- Storage: the object-key characters, the file-size limit (413) and its JWT error (403);
- Realtime: ready after the join, 401 and 413 payloads, unchanged TOAST taken from the old
  record, UPDATE ``old_record`` untrimmed, channels closed when their token expires;
- the listening socket has TCP_NODELAY.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
import pytest
import websockets

from tests.standin import StandIn
from tests.support.pgcluster import PgCluster
from tests.support.standins import scratch_database

SECRET = "standin-strict-secret-with-at-least-32-bytes!!"
OWNER = str(uuid.uuid4())

SCRATCH_SQL = """
create table public.notes (
  id int primary key, owner uuid, body text, blob text, n int default 0
);
alter table public.notes replica identity full;
alter table public.notes enable row level security;
create policy notes_read on public.notes for select to authenticated using (true);
grant select on public.notes to authenticated;
grant all on public.notes to service_role;
-- anon may read the body only: not the primary key
grant select (body) on public.notes to anon;
alter publication supabase_realtime add table public.notes;

create function public.numbers(n int) returns setof int
  language sql stable as 'select generate_series(1, n)';
create function public.bump(n int) returns setof int language plpgsql volatile as $$
begin
  insert into public.notes (id, body) select g, 'bumped' from generate_series(1, n) g
    on conflict (id) do update set n = public.notes.n + 1;
  return query select g from generate_series(1, n) g;
end $$;
create function public.nap(s float) returns int language sql volatile
  as 'select 1 from pg_sleep(s)';
create function public.touch(id int) returns int language sql volatile
  as 'update public.notes set n = n + 1 where id = touch.id returning n';
grant execute on all functions in schema public to anon, authenticated, service_role;

insert into storage.buckets (id, name, public, file_size_limit)
values ('files', 'files', false, null), ('small', 'small', false, 100);
"""


@pytest.fixture(scope="module")
def strict_db(pg_cluster: PgCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, prefix="strict", sql=SCRATCH_SQL) as url:
        yield url


@pytest.fixture(scope="module")
def sb(strict_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    with StandIn(strict_db, SECRET, tmp_path_factory.mktemp("strict-storage")) as standin:
        yield standin


@pytest.fixture
def knobs(sb: StandIn, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    """The stand-in, with every setting a test changes restored afterwards."""
    app = sb.app
    for obj, attr in [(app.rest, "max_rows"), (app.realtime, "ready_delay"),
                      (app.realtime.changes, "max_record_bytes"),
                      (app.storage, "file_size_limit")]:
        monkeypatch.setattr(obj, attr, getattr(obj, attr))
    monkeypatch.setattr(app.rest, "timeouts", dict(app.rest.timeouts))
    return sb


def rpc(sb: StandIn, fn: str, body: dict[str, Any], *, key: str | None = None,
        params: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    hdrs = {"apikey": key or sb.service_key, **headers}
    return httpx.post(f"{sb.url}/rest/v1/rpc/{fn}", json=body, params=params, headers=hdrs)


# ------------------------------------------------------------------------- PostgREST max_rows


def test_max_rows_cuts_function_results_and_says_so(knobs: StandIn) -> None:
    knobs.app.rest.max_rows = 1000
    res = rpc(knobs, "numbers", {"n": 1500})
    assert (res.status_code, len(res.json()), res.headers["content-range"]) == (200, 1000,
                                                                                 "0-999/*")
    counted = rpc(knobs, "numbers", {"n": 1500}, Prefer="count=exact")
    assert (counted.status_code, counted.headers["content-range"]) == (206, "0-999/1500")
    page = rpc(knobs, "numbers", {"n": 1500}, params={"offset": 1000, "limit": 5000},
               Prefer="count=exact")
    assert (page.json()[0], len(page.json()), page.headers["content-range"]) == (
        1001, 500, "1000-1499/1500")
    past = rpc(knobs, "numbers", {"n": 10}, params={"offset": 50}, Prefer="count=exact")
    assert (past.status_code, past.json()["code"]) == (416, "PGRST103")


def test_max_rows_never_stops_the_function(knobs: StandIn, strict_db: str) -> None:
    knobs.app.rest.max_rows = 100
    res = rpc(knobs, "bump", {"n": 250}, Prefer="count=exact")
    assert len(res.json()) == 100 and res.headers["content-range"] == "0-99/250"
    with psycopg.connect(strict_db) as conn:
        assert conn.execute("select count(*) from public.notes where id <= 250").fetchone() == (
            250,)
        conn.execute("delete from public.notes")


# ----------------------------------------------------------------------- timeouts of API roles


def test_api_roles_run_under_supabases_timeouts(knobs: StandIn, strict_db: str) -> None:
    knobs.app.rest.timeouts["service_role"] = ("200ms", "8s")
    res = rpc(knobs, "nap", {"s": 2})
    assert (res.status_code, res.json()["code"]) == (500, "57014")
    knobs.app.rest.timeouts["service_role"] = ("8s", "100ms")
    with psycopg.connect(strict_db) as conn:
        conn.execute("insert into public.notes (id, body) values (7, 'x')")
        conn.commit()
        conn.execute("select 1 from public.notes where id = 7 for update")
        res = rpc(knobs, "touch", {"id": 7})
        conn.rollback()
        conn.execute("delete from public.notes")
        conn.commit()
    assert (res.status_code, res.json()["code"]) == (500, "55P03")
    assert knobs.app.rest.timeouts["anon"] == ("3s", "8s")  # Supabase's anon timeout


# --------------------------------------------------------------------------------- the gateway


@pytest.mark.parametrize("path", ["/rest/v1/rpc/numbers", "/auth/v1/user"])
def test_a_missing_or_unknown_apikey_is_a_codeless_401(sb: StandIn, path: str) -> None:
    missing = httpx.post(f"{sb.url}{path}", json={"n": 1})
    assert missing.status_code == 401
    assert missing.json() == {"message": "No API key found in request",
                              "hint": "No `apikey` request header or url param was found."}
    for key in ("garbage", "sb_secret_not-ours", sb.user_token(OWNER)):
        bad = httpx.post(f"{sb.url}{path}", json={"n": 1}, headers={"apikey": key})
        assert bad.status_code == 401 and "code" not in bad.json()
        assert bad.json()["message"] == "Invalid API key"


def test_the_new_api_keys_are_accepted(sb: StandIn) -> None:
    secret = rpc(sb, "numbers", {"n": 2}, key=sb.secret_key,
                 Authorization=f"Bearer {sb.secret_key}")
    assert secret.status_code == 200 and secret.json() == [1, 2]
    public = rpc(sb, "numbers", {"n": 1}, key=sb.publishable_key)
    assert public.status_code == 200
    user = rpc(sb, "numbers", {"n": 1}, key=sb.publishable_key,
               Authorization=f"Bearer {sb.user_token(OWNER)}")
    assert user.status_code == 200
    # An sb_ key stands in Authorization only next to the same apikey.
    mixed = rpc(sb, "numbers", {"n": 1}, key=sb.publishable_key,
                Authorization=f"Bearer {sb.secret_key}")
    assert mixed.status_code == 401 and "code" not in mixed.json()


def test_the_gateway_gives_an_sb_key_its_role(sb: StandIn) -> None:
    who = httpx.get(f"{sb.url}/rest/v1/notes", params={"select": "id"},
                    headers={"apikey": sb.publishable_key})
    assert (who.status_code, who.json()["code"]) == (401, "42501")  # anon: no SELECT on id
    svc = httpx.get(f"{sb.url}/rest/v1/notes", params={"select": "id"},
                    headers={"apikey": sb.secret_key})
    assert svc.status_code == 200


# -------------------------------------------------------------------------------------- Storage


def _upload(sb: StandIn, bucket: str, name: str, data: bytes, **headers: str) -> httpx.Response:
    hdrs = {"apikey": sb.service_key, "Authorization": f"Bearer {sb.service_key}", **headers}
    return httpx.post(f"{sb.url}/storage/v1/object/{bucket}/{name}", content=data, headers=hdrs)


@pytest.mark.parametrize("name", ["ünï.txt", "t~x.txt", "b[1].txt", "50%25.txt", "h%23x.txt",
                                  "a{b}.txt", "q%22.txt", "p^1.txt", "c%7Cd.txt"])
def test_storage_refuses_keys_s3_cannot_hold(sb: StandIn, name: str) -> None:
    res = _upload(sb, "files", f"dir/{name}", b"x")
    assert res.status_code == 400
    body = res.json()
    assert (body["statusCode"], body["code"]) == ("400", "InvalidKey")
    assert body["message"].startswith("Invalid key: dir/")


def test_storage_accepts_the_characters_it_allows(sb: StandIn) -> None:
    name = "dir/A-z_0.9 !*'()&$=@;:+,.txt"
    assert _upload(sb, "files", name, b"ok").status_code == 200


def test_storage_enforces_the_size_limits(knobs: StandIn) -> None:
    res = _upload(knobs, "small", "big.bin", b"x" * 101)  # the bucket's file_size_limit: 100
    assert res.status_code == 400
    assert res.json() == {"statusCode": "413", "code": "EntityTooLarge",
                          "error": "Payload too large",
                          "message": "The object exceeded the maximum allowed size"}
    assert _upload(knobs, "small", "ok.bin", b"x" * 100).status_code == 200
    knobs.app.storage.file_size_limit = 10  # the project's global limit
    assert _upload(knobs, "files", "g.bin", b"x" * 11).json()["statusCode"] == "413"


def test_storage_refuses_a_bad_jwt_as_access_denied(sb: StandIn) -> None:
    expired = sb.user_token(OWNER, ttl_seconds=-10)
    res = _upload(sb, "files", "dir/x.txt", b"x", Authorization=f"Bearer {expired}")
    assert res.status_code == 400
    body = res.json()
    assert (body["statusCode"], body["code"], body["error"]) == ("403", "AccessDenied",
                                                                 "Unauthorized")


# ------------------------------------------------------------------------------------- Realtime


class Socket:
    """A Phoenix vsn 1.0.0 client on one websocket, keeping every message it receives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self._ref = 0

    async def push(self, topic: str, event: str, payload: dict[str, Any]) -> None:
        self._ref += 1
        await self.ws.send(json.dumps({"topic": topic, "event": event, "payload": payload,
                                       "ref": str(self._ref), "join_ref": str(self._ref)}))

    async def join(self, topic: str, token: str, table: str = "notes") -> None:
        await self.push(topic, "phx_join", {"access_token": token, "config": {
            "postgres_changes": [{"event": "*", "schema": "public", "table": table}]}})

    async def until(self, pred: Any, what: str, seconds: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            for m in self.messages:
                if pred(m):
                    return m
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"never got {what}: {self.messages}"
            try:
                raw = await asyncio.wait_for(self.ws.recv(), remaining)
            except TimeoutError:
                continue
            self.messages.append(json.loads(raw))

    def changes(self, row_id: int | None = None) -> list[dict[str, Any]]:
        """The change payloads received (of the row ``row_id``, by record or old record)."""
        out = [m["payload"]["data"] for m in self.messages if m["event"] == "postgres_changes"]
        if row_id is not None:
            out = [d for d in out
                   if row_id in ((d.get("record") or {}).get("id"),
                                 (d.get("old_record") or {}).get("id"))]
        return out

    async def change(self, row_id: int, kind: str) -> dict[str, Any]:
        await self.until(lambda m: m["event"] == "postgres_changes"
                         and m["payload"]["data"]["type"] == kind
                         and row_id in ((m["payload"]["data"].get("record") or {}).get("id"),
                                        (m["payload"]["data"].get("old_record") or {}).get("id")),
                         f"the {kind} of row {row_id}")
        return [d for d in self.changes(row_id) if d["type"] == kind][-1]


@asynccontextmanager
async def socket_to(sb: StandIn, key: str | None = None) -> AsyncIterator[Socket]:
    url = sb.url.replace("http", "ws") + f"/realtime/v1/websocket?apikey={key or sb.anon_key}" \
        "&vsn=1.0.0"
    async with websockets.connect(url) as ws:
        yield Socket(ws)


def is_ready(m: dict[str, Any]) -> bool:
    return m["event"] == "system" and m["payload"].get("message") == "Subscribed to PostgreSQL"


def sql(db: str, query: str, *args: Any) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(query.encode(), args or None)


async def test_ready_comes_after_the_join_and_nothing_before_it(
    knobs: StandIn, strict_db: str
) -> None:
    knobs.app.realtime.ready_delay = 1.0
    async with socket_to(knobs, knobs.service_key) as s:
        await s.join("realtime:gap", knobs.service_key)
        await s.until(lambda m: m["event"] == "phx_reply", "the join reply")
        await asyncio.to_thread(sql, strict_db, "insert into public.notes (id) values (1)")
        await s.until(is_ready, "the ready message")
        await asyncio.to_thread(sql, strict_db, "insert into public.notes (id) values (2)")
        await s.change(2, "INSERT")
        order = [m["event"] for m in s.messages]
    assert order.index("phx_reply") < order.index("system") < order.index("postgres_changes")
    assert s.changes(1) == []  # it fell in the gap


async def test_a_role_that_cannot_read_the_key_gets_401_payloads(
    knobs: StandIn, strict_db: str
) -> None:
    knobs.app.realtime.ready_delay = 0
    async with socket_to(knobs) as s:
        await s.join("realtime:anon", knobs.anon_key)  # anon: SELECT on body only
        await s.until(is_ready, "ready")
        await asyncio.to_thread(sql, strict_db,
                                "insert into public.notes (id, body) values (3, 'hidden')")
        change = (await s.until(lambda m: m["event"] == "postgres_changes"
                                and m["payload"]["data"]["type"] == "INSERT", "the insert")
                  )["payload"]["data"]
    assert change == {"schema": "public", "table": "notes", "type": "INSERT", "columns": [],
                      "commit_timestamp": None, "record": {},
                      "errors": ["Error 401: Unauthorized"]}


async def test_oversized_changes_keep_only_small_values_and_say_413(
    knobs: StandIn, strict_db: str
) -> None:
    knobs.app.realtime.ready_delay = 0
    knobs.app.realtime.changes.max_record_bytes = 2048
    async with socket_to(knobs, knobs.service_key) as s:
        await s.join("realtime:big", knobs.service_key)
        await s.until(is_ready, "ready")
        await asyncio.to_thread(sql, strict_db, "insert into public.notes (id, body, blob)"
                                " values (4, 'short', repeat('b', 3000))")
        change = await s.change(4, "INSERT")
    assert change["errors"] == ["Error 413: Payload Too Large"]
    assert change["record"] == {"id": 4, "owner": None, "body": "short", "n": 0}


async def test_unchanged_toast_comes_from_the_old_record_and_update_old_is_whole(
    knobs: StandIn, strict_db: str
) -> None:
    """wal2json leaves a TOASTed value an UPDATE did not change out of the new columns; the
    real server takes it from the old record (replica identity full) and, RLS or not, sends
    the whole old record of an UPDATE (only a DELETE's is cut to the primary key)."""
    knobs.app.realtime.ready_delay = 0
    big = "".join(str(uuid.uuid4()) for _ in range(400))  # ~14 KB, incompressible: TOASTed
    await asyncio.to_thread(sql, strict_db, "insert into public.notes (id, body, blob)"
                            " values (5, 'b', %s)", big)
    async with socket_to(knobs, knobs.service_key) as s:
        await s.join("realtime:toast", knobs.service_key)
        await s.until(is_ready, "ready")
        await asyncio.to_thread(sql, strict_db, "update public.notes set n = 1 where id = 5")
        await asyncio.to_thread(sql, strict_db, "delete from public.notes where id = 5")
        update = await s.change(5, "UPDATE")
        delete = await s.change(5, "DELETE")
    assert update["record"]["blob"] == big and update["record"]["n"] == 1
    assert update["old_record"] == {"id": 5, "owner": None, "body": "b", "blob": big, "n": 0}
    assert delete["old_record"] == {"id": 5}  # RLS on: a DELETE carries the key only


async def test_a_channel_closes_when_its_token_expires(knobs: StandIn) -> None:
    knobs.app.realtime.ready_delay = 0
    token = knobs.user_token(OWNER, ttl_seconds=2)
    async with socket_to(knobs) as s:
        await s.join("realtime:exp", token)
        await s.until(is_ready, "ready")
        system = await s.until(lambda m: m["event"] == "system"
                               and m["payload"]["status"] == "error", "the expiry", 30)
        await s.until(lambda m: m["event"] == "phx_close", "the close")
    assert system["payload"]["extension"] == "system"
    assert system["payload"]["message"].startswith("Token has expired")


async def test_a_fresh_access_token_keeps_the_channel_open(knobs: StandIn) -> None:
    knobs.app.realtime.ready_delay = 0
    async with socket_to(knobs) as s:
        await s.join("realtime:fresh", knobs.user_token(OWNER, ttl_seconds=2))
        await s.until(is_ready, "ready")
        await s.push("realtime:fresh", "access_token",
                     {"access_token": knobs.user_token(OWNER, ttl_seconds=60)})
        await asyncio.sleep(3)
        await s.push("phoenix", "heartbeat", {})
        await s.until(lambda m: m["topic"] == "phoenix", "the heartbeat reply")
    assert not [m for m in s.messages if m["event"] in ("phx_close", "system")
                and m["payload"].get("status") != "ok"]


async def test_a_join_needs_a_token_with_exp(sb: StandIn) -> None:
    from tests.standin.auth import sign

    no_exp = sign(SECRET, {"role": "authenticated", "sub": OWNER})
    async with socket_to(sb) as s:
        await s.join("realtime:noexp", no_exp)
        reply = await s.until(lambda m: m["event"] == "phx_reply", "the reply")
    assert reply["payload"]["status"] == "error"
    assert "`role` and `exp` are required" in reply["payload"]["response"]["reason"]


async def test_a_socket_needs_a_valid_key(sb: StandIn) -> None:
    url = sb.url.replace("http", "ws") + "/realtime/v1/websocket?apikey=nope&vsn=1.0.0"
    with pytest.raises(websockets.InvalidStatus) as err:
        async with websockets.connect(url):
            pass
    assert err.value.response.status_code == 401


# ---------------------------------------------------------------------------------- the socket


def test_the_listener_has_tcp_nodelay(sb: StandIn) -> None:
    """Without it every small response waited for the client's delayed ACK (~45 ms)."""
    lst = sb._sock
    # asyncio sets TCP_NODELAY on accepted sockets only when the proto says TCP; Linux also
    # copies the listener's option to them.
    assert lst.proto == socket.IPPROTO_TCP
    assert lst.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1

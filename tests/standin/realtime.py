"""``/realtime/v1/websocket``: Phoenix-channel Postgres Changes, fed by logical decoding.

Protocol: Phoenix channels, framed by ``vsn`` (``phoenix.py``: 1.0.0 JSON objects, as
realtime-py 2.34.1 speaks it, or 2.0.0 JSON arrays, supabase-js' default). ``phx_join`` carries
``config.postgres_changes`` bindings and ``access_token``; the reply echoes the
bindings with server ids; changes arrive as ``postgres_changes`` events whose
``payload.ids`` name the matching bindings.

Change capture mirrors Supabase Realtime's design: a temporary wal2json slot
per stand-in instance, polled every ``POLL_SECONDS``; only tables in the
``supabase_realtime`` publication are delivered; INSERT/UPDATE are sent to a
subscriber only if the row is visible to it (a ``select`` by primary key under
its role and claims, i.e. RLS) and its filter matches; DELETE is not RLS
checked and carries only the replica-identity columns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import auth
from .auth import AuthError, Caller
from .db import request_tx
from .phoenix import SERIALIZERS, Serializer

log = logging.getLogger(__name__)

POLL_SECONDS = 0.03
PUBLICATION = "supabase_realtime"
EVENTS = {"I": "INSERT", "U": "UPDATE", "D": "DELETE"}
_FILTER_OPS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">=",
               "like": "like", "ilike": "ilike"}
_SUPERUSER = Caller(role="none", claims={}, token=None)


class BindingError(ValueError):
    pass


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: str | list[str]
    negate: bool


def parse_filter(text: str | None) -> list[Condition]:
    """``col=op.value[,col=op.value...]`` with ``in.(a,b)`` and an optional ``not.``."""
    if not text:
        return []
    parts = re.split(r",(?![^()]*\))", text)
    out: list[Condition] = []
    for part in parts:
        column, eq, expr = part.partition("=")
        if not eq or not column:
            raise BindingError(f"invalid filter: {text}")
        negate = expr.startswith("not.")
        if negate:
            expr = expr[4:]
        op, dot, value = expr.partition(".")
        if not dot:
            raise BindingError(f"invalid filter: {text}")
        if op == "in":
            if not (value.startswith("(") and value.endswith(")")):
                raise BindingError(f"invalid filter: {text}")
            items = [v.strip().strip('"') for v in value[1:-1].split(",") if v.strip()]
            out.append(Condition(column, "in", items, negate))
        elif op == "is" and value.lower() in ("null", "true", "false"):
            out.append(Condition(column, "is", value.lower(), negate))
        elif op in _FILTER_OPS:
            out.append(Condition(column, op, value, negate))
        else:
            raise BindingError(f"invalid filter operator: {op}")
    return out


@dataclass
class Binding:
    id: int
    event: str
    schema: str
    table: str | None
    filter: str | None
    conditions: list[Condition]

    def wants(self, schema: str, table: str, event: str) -> bool:
        return (self.schema == schema and self.table in (None, "*", table)
                and self.event in ("*", event))


@dataclass
class Channel:
    topic: str
    join_ref: str | None
    caller: Caller
    bindings: list[Binding]


@dataclass(eq=False)
class Connection:
    ws: WebSocket
    serializer: Serializer
    apikey_caller: Caller
    channels: dict[str, Channel] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, message: dict[str, Any]) -> None:
        async with self.lock:
            await self.ws.send_text(self.serializer.encode(message))


@dataclass(frozen=True)
class TableInfo:
    columns: dict[str, tuple[str, str]]  # name -> (typname, format_type), in order
    pk: list[str]
    rls: bool


class Realtime:
    def __init__(self, db_url: str, pool: AsyncConnectionPool, jwt_secret: str) -> None:
        self.db_url = db_url
        self.pool = pool
        self.secret = jwt_secret
        self.slot = f"standin_{uuid4().hex[:16]}"
        self.connections: set[Connection] = set()
        self.join_count = 0
        self._feed: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._tables: dict[tuple[str, str], TableInfo] = {}

    # lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        self._feed = await psycopg.AsyncConnection.connect(self.db_url, autocommit=True)
        await self._feed.execute(
            "select pg_create_logical_replication_slot(%s, 'wal2json', true)", (self.slot,))
        self._task = asyncio.create_task(self._poll_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._feed is not None:
            await self._feed.close()  # the temporary slot goes with the session

    async def drop_all(self) -> int:
        conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1012, reason="stand-in dropped the connection")
        return len(conns)

    # websocket protocol --------------------------------------------------------
    async def serve(self, ws: WebSocket) -> None:
        try:
            caller = auth.caller_from_token(self.secret, ws.query_params.get("apikey"))
        except AuthError:
            await ws.close(code=1008)
            return
        make = SERIALIZERS.get(ws.query_params.get("vsn", "1.0.0"))
        if make is None:
            await ws.close(code=1008)
            return
        await ws.accept()
        conn = Connection(ws, make(), caller)
        self.connections.add(conn)
        try:
            while True:
                msg = conn.serializer.decode(await _receive_frame(ws))
                if msg is not None:
                    await self._handle(conn, msg)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.connections.discard(conn)

    async def _reply(self, conn: Connection, msg: dict[str, Any], status: str,
                     response: dict[str, Any]) -> None:
        await conn.send({"topic": msg.get("topic"), "event": "phx_reply",
                         "payload": {"status": status, "response": response},
                         "ref": msg.get("ref"), "join_ref": msg.get("join_ref")})

    async def _handle(self, conn: Connection, msg: dict[str, Any]) -> None:
        event, topic = msg.get("event"), str(msg.get("topic", ""))
        payload = msg.get("payload") if isinstance(msg.get("payload"), dict) else {}
        assert isinstance(payload, dict)
        if topic == "phoenix" and event == "heartbeat":
            await self._reply(conn, msg, "ok", {})
        elif event == "phx_join":
            await self._join(conn, msg, topic, payload)
        elif event == "phx_leave":
            conn.channels.pop(topic, None)
            await self._reply(conn, msg, "ok", {})
        elif event == "access_token":
            channel = conn.channels.get(topic)
            try:
                new_caller = auth.caller_from_token(self.secret, payload.get("access_token"))
            except AuthError as exc:
                if channel is not None:
                    conn.channels.pop(topic, None)
                    await conn.send({"topic": topic, "event": "phx_close", "payload": {},
                                     "ref": None, "join_ref": channel.join_ref})
                log.info("access_token rejected: %s", exc.message)
                return
            if channel is not None:
                channel.caller = new_caller
            if msg.get("ref") is not None:
                await self._reply(conn, msg, "ok", {})
        elif msg.get("ref") is not None:
            # broadcast / presence pushes: acknowledged, not implemented.
            await self._reply(conn, msg, "ok", {})

    async def _join(self, conn: Connection, msg: dict[str, Any], topic: str,
                    payload: dict[str, Any]) -> None:
        token = payload.get("access_token")
        try:
            caller = (auth.caller_from_token(self.secret, token) if token
                      else conn.apikey_caller)
        except AuthError as exc:
            await self._reply(conn, msg, "error", {"reason": f"InvalidJWTToken: {exc.message}"})
            return
        config = payload.get("config") or {}
        bindings: list[Binding] = []
        reply: list[dict[str, Any]] = []
        try:
            for raw in config.get("postgres_changes") or []:
                event = str(raw.get("event", "*"))
                if event not in ("*", "INSERT", "UPDATE", "DELETE"):
                    raise BindingError(f"invalid event: {event}")
                schema, table, flt = raw.get("schema", "public"), raw.get("table"), raw.get(
                    "filter")
                key = json.dumps([event, schema, table, flt]).encode()
                bid = zlib.crc32(key) or 1
                bindings.append(Binding(bid, event, schema, table, flt, parse_filter(flt)))
                reply.append({"id": bid, "event": event, "schema": schema, "table": table,
                              "filter": flt})
        except BindingError as exc:
            await self._reply(conn, msg, "error", {"reason": str(exc)})
            return
        conn.channels[topic] = Channel(topic, msg.get("join_ref") or msg.get("ref"), caller,
                                       bindings)
        self.join_count += 1
        await self._reply(conn, msg, "ok", {"postgres_changes": reply})
        if bindings:
            await conn.send({"topic": topic, "event": "system", "ref": None,
                             "payload": {"channel": topic.removeprefix("realtime:"),
                                         "extension": "postgres_changes",
                                         "message": "Subscribed to PostgreSQL",
                                         "status": "ok"}})

    # change feed ----------------------------------------------------------------
    async def _poll_forever(self) -> None:
        assert self._feed is not None
        while True:
            try:
                cur = await self._feed.execute(
                    "select data from pg_logical_slot_get_changes(%s, null, null,"
                    " 'format-version', '2', 'include-timestamp', '1', 'include-types', '1',"
                    " 'include-pk', '1', 'include-transaction', '0')", (self.slot,))
                rows = await cur.fetchall()
                if rows:
                    published = await self._published()
                    for (data,) in rows:
                        change = json.loads(data)
                        if (change.get("action") in EVENTS
                                and (change["schema"], change["table"]) in published):
                            await self._dispatch(change)
                else:
                    await asyncio.sleep(POLL_SECONDS)
            except asyncio.CancelledError:
                raise
            except psycopg.OperationalError:
                # Lost the feed session (and with it the temporary slot): like a
                # Realtime restart, changes in between are gone; start a new slot.
                log.warning("realtime feed connection lost; recreating the slot")
                await asyncio.sleep(1)
                with contextlib.suppress(psycopg.Error):
                    await self._feed.close()
                    self._feed = await psycopg.AsyncConnection.connect(self.db_url,
                                                                       autocommit=True)
                    await self._feed.execute(
                        "select pg_create_logical_replication_slot(%s, 'wal2json', true)",
                        (self.slot,))
            except Exception:
                log.exception("realtime change feed error")
                await asyncio.sleep(1)

    async def _published(self) -> set[tuple[str, str]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "select schemaname, tablename from pg_publication_tables where pubname = %s",
                (PUBLICATION,))
            return {(s, t) for s, t in await cur.fetchall()}

    async def _table(self, schema: str, table: str, refresh: bool = False) -> TableInfo:
        key = (schema, table)
        if refresh or key not in self._tables:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "select a.attname, t.typname, format_type(a.atttypid, a.atttypmod),"
                    " coalesce(a.attnum = any(i.indkey), false), c.relrowsecurity"
                    " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                    " join pg_attribute a on a.attrelid = c.oid"
                    " join pg_type t on t.oid = a.atttypid"
                    " left join pg_index i on i.indrelid = c.oid and i.indisprimary"
                    " where n.nspname = %s and c.relname = %s and a.attnum > 0"
                    " and not a.attisdropped order by a.attnum", (schema, table))
                rows = await cur.fetchall()
            self._tables[key] = TableInfo(
                columns={r[0]: (r[1], r[2]) for r in rows},
                pk=[r[0] for r in rows if r[3]],
                rls=bool(rows and rows[0][4]),
            )
        return self._tables[key]

    async def _typed(self, schema: str, table: str, info: TableInfo,
                     cols: list[dict[str, Any]]) -> dict[str, Any]:
        """Convert wal2json column values to the JSON Realtime sends (via to_jsonb)."""
        raw: dict[str, Any] = {}
        for col in cols:
            value = col.get("value")
            if col.get("type") in ("json", "jsonb") and isinstance(value, str):
                value = json.loads(value)
            raw[col["name"]] = value
        rel = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                sql.SQL("select to_jsonb(r)::text"
                        " from jsonb_populate_record(null::{}, %s::jsonb) r").format(rel),
                (json.dumps(raw),))
            row = await cur.fetchone()
        typed: dict[str, Any] = json.loads(row[0]) if row else {}
        return {k: typed.get(k) for k in raw}

    async def _dispatch(self, change: dict[str, Any]) -> None:
        schema, table, event = change["schema"], change["table"], EVENTS[change["action"]]
        info = await self._table(schema, table)
        if any(c["name"] not in info.columns for c in change.get("columns", [])):
            info = await self._table(schema, table, refresh=True)
        targets = [(conn, ch, [b for b in ch.bindings if b.wants(schema, table, event)])
                   for conn in list(self.connections) for ch in list(conn.channels.values())]
        targets = [t for t in targets if t[2]]
        if not targets:
            return
        record = (await self._typed(schema, table, info, change["columns"])
                  if "columns" in change else None)
        old: dict[str, Any] | None = None
        if event != "INSERT":
            old = await self._typed(schema, table, info, change.get("identity", []))
            if info.rls:
                old = {k: v for k, v in old.items() if k in info.pk}
        data: dict[str, Any] = {
            "schema": schema, "table": table, "commit_timestamp": _commit_ts(change),
            "type": event,
            "columns": [{"name": n, "type": t[0]} for n, t in info.columns.items()],
            "errors": None,
        }
        if record is not None:
            data["record"] = record
        if old is not None:
            data["old_record"] = old
        row_for_checks = record if record is not None else (old or {})
        for conn, channel, bindings in targets:
            ids = await self._matching_ids(schema, table, info, event, channel, bindings,
                                           row_for_checks)
            if not ids:
                continue
            with contextlib.suppress(Exception):
                await conn.send({"topic": channel.topic, "event": "postgres_changes",
                                 "payload": {"ids": ids, "data": data}, "ref": None})

    async def _matching_ids(self, schema: str, table: str, info: TableInfo, event: str,
                            channel: Channel, bindings: list[Binding],
                            row: dict[str, Any]) -> list[int]:
        """One query as the subscriber: row visible under RLS? which filters match?"""
        rel = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        params: list[Any] = []
        if event == "DELETE":
            visible: sql.Composable = sql.SQL("true")  # DELETEs are not RLS-checked
        elif not info.pk:
            return []  # Realtime requires a primary key to check RLS
        else:
            rkeys = sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(c))
                                       for c in info.pk)
            # Like Realtime: needs SELECT; RLS is only consulted when the table has
            # it enabled and the role does not bypass it (then the row must be
            # visible by primary key *now*, so a row deleted before the check is
            # not sent to RLS-restricted subscribers).
            visible = sql.SQL(
                "has_table_privilege({relname}, 'SELECT') and ({no_rls} or"
                " (select rolbypassrls from pg_roles where rolname = current_user) or"
                " exists (select 1 from {rel} t where ({tkeys}) = ({rkeys})))").format(
                relname=sql.Literal(f'"{schema}"."{table}"'),
                no_rls=sql.SQL("false" if info.rls else "true"), rel=rel,
                tkeys=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c))
                                         for c in info.pk), rkeys=rkeys)
        checks: list[sql.Composable] = []
        for b in bindings:
            cond, cond_params = _binding_sql(b, info, row)
            checks.append(cond)
            params += cond_params
        query = sql.SQL("select {}, {} from jsonb_populate_record(null::{}, %s::jsonb) r").format(
            visible, sql.SQL(", ").join(checks), rel)
        params.append(json.dumps(row))
        caller = _SUPERUSER if event == "DELETE" else channel.caller
        try:
            async with request_tx(self.pool, caller, read_only=True, method="GET",
                                  path="/realtime/v1") as conn:
                cur = await conn.execute(query, params)
                result = await cur.fetchone()
        except psycopg.Error as exc:
            log.info("realtime check failed for %s: %s", channel.topic, exc)
            return []
        if result is None or not result[0]:
            return []
        return [b.id for b, ok in zip(bindings, result[1:], strict=True) if ok]


async def _receive_frame(ws: WebSocket) -> str | bytes:
    """The next text or binary frame (2.0.0 clients send both)."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text: str | None = message.get("text")
    return text if text is not None else bytes(message.get("bytes") or b"")


def _binding_sql(b: Binding, info: TableInfo, row: dict[str, Any]
                 ) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for cond in b.conditions:
        if cond.column not in info.columns or cond.column not in row:
            return sql.SQL("false"), []
        col = sql.SQL("r.{}").format(sql.Identifier(cond.column))
        typ = sql.SQL(info.columns[cond.column][1])
        if cond.op == "in":
            expr: sql.Composable = sql.SQL("{} = any(%s::text[]::{}[])").format(col, typ)
            params.append(cond.value)
        elif cond.op == "is":
            expr = sql.SQL("{} is {}").format(col, sql.SQL(str(cond.value)))
        else:
            expr = sql.SQL("{} {} %s::text::{}").format(col, sql.SQL(_FILTER_OPS[cond.op]), typ)
            params.append(cond.value)
        if cond.negate:
            expr = sql.SQL("not ({})").format(expr)
        parts.append(sql.SQL("coalesce({}, false)").format(expr))
    if not parts:
        return sql.SQL("true"), []
    return sql.SQL("({})").format(sql.SQL(" and ").join(parts)), params


def _commit_ts(change: dict[str, Any]) -> str:
    raw = change.get("timestamp")
    try:
        ts = datetime.fromisoformat(raw) if isinstance(raw, str) else datetime.now(UTC)
    except ValueError:
        ts = datetime.now(UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

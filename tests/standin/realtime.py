"""``/realtime/v1/websocket``: Phoenix channels with Postgres Changes, fed by logical decoding.

Layers, each replaceable on its own:

- **Frames** (``phoenix.py``): how a message is put on the wire, by the socket's ``vsn``:
  ``1.0.0`` JSON objects (realtime-py 2.34.1) or ``2.0.0`` JSON arrays (supabase-js' default).
- **Channels** (``Realtime``): ``phx_join`` with ``config.postgres_changes`` bindings and an
  ``access_token``; the reply echoes the bindings with server ids; ``access_token`` pushes swap
  the token; ``phx_leave``; heartbeats.
- **Changes** (``realtime_wal.Changes``): wal2json polled from a temporary slot, turned into each
  subscriber's payload (RLS, 401/413 errors, TOAST merge).

What the real server does and this one reproduces (``lib/realtime_web/channels/
realtime_channel.ex``):

- The socket's ``apikey`` must be a valid, unexpired JWT (the gateway has already turned an
  ``sb_`` key into one), else the upgrade is refused with 401 ``{"error": ...}``.
- A join needs a token with ``role`` and ``exp``; an ``access_token`` of ``sb_…`` means "the
  socket's own token" (the tenant token), in the join and in ``access_token`` pushes (ignored).
- **Ready comes later.** The join is answered ``ok`` first; the change feed for the channel is
  live only when the system message ``Subscribed to PostgreSQL`` is pushed, ``ready_delay``
  seconds later (the real server: 1-3 s, more when replication is not up). Changes committed in
  between are not delivered. ``fail_next_subscribes`` makes the next joins get a system
  ``status: error`` instead (the real server then retries after 5-10 s; here it gives up).
- **Tokens expire on open channels.** At the token's ``exp`` the channel gets a system error
  ``Token has expired N seconds ago`` and ``phx_close``; an ``access_token`` push with a newer
  token moves the deadline, an invalid or expired one closes the channel the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import psycopg
from psycopg_pool import AsyncConnectionPool
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import auth
from .auth import AuthError, Caller
from .phoenix import SERIALIZERS, Serializer
from .realtime_wal import (
    EVENTS,
    Binding,
    BindingError,
    Changes,
    Subscriber,
    parse_filter,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 0.03
PUBLICATION = "supabase_realtime"
#: Seconds between the join reply and "Subscribed to PostgreSQL" (tests raise it to open the
#: window in which the real server drops changes).
READY_DELAY_SECONDS = 0.2


# --- channels ------------------------------------------------------------------------------


@dataclass(eq=False)
class Channel:
    topic: str
    join_ref: str | None
    caller: Caller
    bindings: list[Binding]
    #: True once "Subscribed to PostgreSQL" went out: only then are changes delivered.
    ready: bool = False
    expiry: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        return self.topic.removeprefix("realtime:")

    def cancel_expiry(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None


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


def _system(channel: Channel, extension: str, status: str, message: str) -> dict[str, Any]:
    return {
        "topic": channel.topic,
        "event": "system",
        "ref": None,
        "payload": {
            "channel": channel.name,
            "extension": extension,
            "message": message,
            "status": status,
        },
    }


class Realtime:
    def __init__(self, db_url: str, pool: AsyncConnectionPool, jwt_secret: str) -> None:
        self.db_url = db_url
        self.pool = pool
        self.secret = jwt_secret
        self.slot = f"standin_{uuid4().hex[:16]}"
        self.connections: set[Connection] = set()
        self.changes = Changes(pool)
        self.join_count = 0
        self.ready_delay = READY_DELAY_SECONDS
        #: The next this-many joins get a system ``status: error`` instead of "ready".
        self.fail_next_subscribes = 0
        #: Channels closed because their token expired (for tests).
        self.expired_channels = 0
        self._feed: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    # lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        self._feed = await psycopg.AsyncConnection.connect(self.db_url, autocommit=True)
        await self._feed.execute(
            "select pg_create_logical_replication_slot(%s, 'wal2json', true)", (self.slot,)
        )
        self._task = asyncio.create_task(self._poll_forever())

    async def stop(self) -> None:
        for task in [self._task, *self._pending]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._feed is not None:
            await self._feed.close()  # the temporary slot goes with the session

    async def drop_all(self) -> int:
        conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1012, reason="stand-in dropped the connection")
        return len(conns)

    def _later(self, delay: float, job: Callable[[], Any]) -> asyncio.TimerHandle:
        def run() -> None:
            task = asyncio.ensure_future(job())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        return asyncio.get_running_loop().call_later(max(0.0, delay), run)

    # websocket protocol --------------------------------------------------------
    async def serve(self, ws: WebSocket) -> None:
        make = SERIALIZERS.get(ws.query_params.get("vsn", "1.0.0"))
        if make is None:
            await ws.close(code=1008)
            return
        try:
            caller = auth.caller_from_token(self.secret, ws.query_params.get("apikey"))
        except AuthError as exc:
            text = (
                "Token has expired"
                if exc.code == "PGRST303"
                else ("The token provided is not a valid JWT")
            )
            await ws.send_denial_response(JSONResponse({"error": text}, status_code=401))
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
            for channel in conn.channels.values():
                channel.cancel_expiry()

    async def _reply(
        self, conn: Connection, msg: dict[str, Any], status: str, response: dict[str, Any]
    ) -> None:
        await conn.send(
            {
                "topic": msg.get("topic"),
                "event": "phx_reply",
                "payload": {"status": status, "response": response},
                "ref": msg.get("ref"),
                "join_ref": msg.get("join_ref"),
            }
        )

    async def _handle(self, conn: Connection, msg: dict[str, Any]) -> None:
        event, topic = msg.get("event"), str(msg.get("topic", ""))
        payload = msg.get("payload") if isinstance(msg.get("payload"), dict) else {}
        assert isinstance(payload, dict)
        if topic == "phoenix" and event == "heartbeat":
            await self._reply(conn, msg, "ok", {})
        elif event == "phx_join":
            await self._join(conn, msg, topic, payload)
        elif event == "phx_leave":
            left = conn.channels.pop(topic, None)
            if left is not None:
                left.cancel_expiry()
            await self._reply(conn, msg, "ok", {})
        elif event == "access_token":
            await self._access_token(conn, topic, payload.get("access_token"))
        elif msg.get("ref") is not None:
            # broadcast / presence pushes: acknowledged, not implemented.
            await self._reply(conn, msg, "ok", {})

    def _token_caller(self, conn: Connection, token: Any) -> Caller:
        """The caller a join's ``access_token`` stands for (``assign_access_token`` +
        ``confirm_token``): none or an ``sb_`` key means the socket's own token."""
        if not token or (isinstance(token, str) and token.startswith("sb_")):
            caller = conn.apikey_caller
        else:
            caller = auth.caller_from_token(self.secret, str(token))
        if not isinstance(caller.claims.get("exp"), int) or "role" not in caller.claims:
            raise AuthError("missing_claims", "Fields `role` and `exp` are required in JWT")
        return caller

    async def _access_token(self, conn: Connection, topic: str, token: Any) -> None:
        channel = conn.channels.get(topic)
        if channel is None or not token or (isinstance(token, str) and token.startswith("sb_")):
            return
        if token == channel.caller.token:
            return
        try:
            channel.caller = self._token_caller(conn, token)
        except AuthError as exc:
            await self._shutdown(conn, channel, _expired_message(exc, token))
            return
        self._watch_expiry(conn, channel)

    async def _join(
        self, conn: Connection, msg: dict[str, Any], topic: str, payload: dict[str, Any]
    ) -> None:
        try:
            caller = self._token_caller(conn, payload.get("access_token"))
        except AuthError as exc:
            reason = _expired_message(exc, payload.get("access_token"))
            await self._reply(conn, msg, "error", {"reason": f"InvalidJWTToken: {reason}"})
            return
        config = payload.get("config") or {}
        bindings: list[Binding] = []
        reply: list[dict[str, Any]] = []
        try:
            for raw in config.get("postgres_changes") or []:
                event = str(raw.get("event", "*"))
                if event not in ("*", "INSERT", "UPDATE", "DELETE"):
                    raise BindingError(f"invalid event: {event}")
                schema, table, flt = (
                    raw.get("schema", "public"),
                    raw.get("table"),
                    raw.get("filter"),
                )
                key = json.dumps([event, schema, table, flt]).encode()
                bid = zlib.crc32(key) or 1
                bindings.append(Binding(bid, event, schema, table, flt, parse_filter(flt)))
                reply.append(
                    {"id": bid, "event": event, "schema": schema, "table": table, "filter": flt}
                )
        except BindingError as exc:
            await self._reply(conn, msg, "error", {"reason": str(exc)})
            return
        old = conn.channels.pop(topic, None)
        if old is not None:
            old.cancel_expiry()
        channel = Channel(topic, msg.get("join_ref") or msg.get("ref"), caller, bindings)
        conn.channels[topic] = channel
        self.join_count += 1
        await self._reply(conn, msg, "ok", {"postgres_changes": reply})
        self._watch_expiry(conn, channel)
        if bindings:
            # ``send(self(), :postgres_subscribe)``: the feed goes live later, then says so.
            self._later(self.ready_delay, lambda: self._subscribe_postgres(conn, channel))

    async def _subscribe_postgres(self, conn: Connection, channel: Channel) -> None:
        if conn.channels.get(channel.topic) is not channel:
            return  # left or rejoined meanwhile
        if self.fail_next_subscribes > 0:
            self.fail_next_subscribes -= 1
            await conn.send(
                _system(
                    channel,
                    "postgres_changes",
                    "error",
                    "UnableToSubscribeToPostgres: the stand-in refused",
                )
            )
            return
        channel.ready = True
        await conn.send(_system(channel, "postgres_changes", "ok", "Subscribed to PostgreSQL"))

    def _watch_expiry(self, conn: Connection, channel: Channel) -> None:
        """``confirm_token`` again at ``exp`` (the real server: at min(5 min, exp - now))."""
        channel.cancel_expiry()
        exp = channel.caller.claims.get("exp")
        if isinstance(exp, int):
            channel.expiry = self._later(exp - time.time(), lambda: self._expire(conn, channel))

    async def _expire(self, conn: Connection, channel: Channel) -> None:
        if conn.channels.get(channel.topic) is not channel:
            return
        exp = channel.caller.claims.get("exp")
        ago = max(0, int(time.time()) - exp) if isinstance(exp, int) else 0
        self.expired_channels += 1
        await self._shutdown(conn, channel, f"Token has expired {ago} seconds ago")

    async def _shutdown(self, conn: Connection, channel: Channel, message: str) -> None:
        """``shutdown_response``: a system error, then the channel process stops."""
        conn.channels.pop(channel.topic, None)
        channel.cancel_expiry()
        with contextlib.suppress(Exception):
            await conn.send(_system(channel, "system", "error", message))
            await conn.send(
                {
                    "topic": channel.topic,
                    "event": "phx_close",
                    "payload": {},
                    "ref": None,
                    "join_ref": channel.join_ref,
                }
            )

    # change feed ----------------------------------------------------------------
    async def _poll_forever(self) -> None:
        assert self._feed is not None
        while True:
            try:
                cur = await self._feed.execute(
                    "select data from pg_logical_slot_get_changes(%s, null, null,"
                    " 'format-version', '2', 'include-timestamp', '1', 'include-types', '1',"
                    " 'include-pk', '1', 'include-transaction', '0')",
                    (self.slot,),
                )
                rows = await cur.fetchall()
                if rows:
                    published = await self.changes.published(PUBLICATION)
                    raws = [json.loads(data) for (data,) in rows]
                    await self._dispatch([
                        c for c in raws
                        if c.get("action") in EVENTS and (c["schema"], c["table"]) in published
                    ])  # fmt: skip
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
                    self._feed = await psycopg.AsyncConnection.connect(
                        self.db_url, autocommit=True
                    )
                    await self._feed.execute(
                        "select pg_create_logical_replication_slot(%s, 'wal2json', true)",
                        (self.slot,),
                    )
            except Exception:
                log.exception("realtime change feed error")
                await asyncio.sleep(1)

    def _targets(self, raw: dict[str, Any]) -> list[tuple[Connection, Channel, list[Binding]]]:
        """The ready channels with bindings that want this change."""
        schema, table, event = raw["schema"], raw["table"], EVENTS[raw["action"]]
        found = []
        for conn in list(self.connections):
            for ch in list(conn.channels.values()):
                wanted = [b for b in ch.bindings if b.wants(schema, table, event)]
                if ch.ready and wanted:
                    found.append((conn, ch, wanted))
        return found

    async def _dispatch(self, raws: list[dict[str, Any]]) -> None:
        """Send a batch of changes, in commit order, to the channels that want them. Changes
        nobody wants are not even decoded."""
        wanted = [(raw, t) for raw in raws if (t := self._targets(raw))]
        if not wanted:
            return
        self.changes.new_batch()
        decoded = await self.changes.decode_many([raw for raw, _ in wanted])
        for change, (_, targets) in zip(decoded, wanted, strict=True):
            for conn, channel, bindings in targets:
                out = await self.changes.payload(change, Subscriber(channel.caller, bindings))
                if out is None:
                    continue
                ids, data = out
                with contextlib.suppress(Exception):
                    await conn.send({"topic": channel.topic, "event": "postgres_changes",
                                     "payload": {"ids": ids, "data": data}, "ref": None})


async def _receive_frame(ws: WebSocket) -> str | bytes:
    """The next text or binary frame (2.0.0 clients send both)."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text: str | None = message.get("text")
    return text if text is not None else bytes(message.get("bytes") or b"")


def _expired_message(exc: AuthError, token: Any) -> str:
    """``ChannelsAuthorization``'s words: "Token has expired N seconds ago"."""
    if exc.code != "PGRST303" or not isinstance(token, str):
        return exc.message
    try:
        exp = int(auth.unverified_claims(token).get("exp", 0))
    except (ValueError, TypeError):
        exp = 0
    return f"Token has expired {max(0, int(time.time()) - exp)} seconds ago"

"""Supabase over HTTP: RPC through PostgREST, files through Storage, live changes through
Realtime, all with supabase-py.

Every ``Call`` is ``POST /rest/v1/rpc/<fn>`` with its named arguments as a JSON object, so the
same SQL functions run with the same arguments as over a direct connection, under the caller's
JWT (service role / secret key, or a user's access token with the project key as ``apikey``, so
RLS applies). supabase-py never retries a POST; calls marked ``retry_safe`` are retried here,
via ``with_retry``, on transport failures only.

What a real project adds, and how it is met here:

- **The row cap.** PostgREST answers with at most ``max_rows`` rows (1000); calls that could
  return more are split or paged by ``paging.Pager`` (every reply is counted, so a cut one is
  noticed).
- **Tokens expire.** The bearer token comes from ``tokens.Tokens``: a fixed key or access token,
  or a provider asked again before the token expires; open Realtime channels get the new one
  (``set_auth``) before the server would close them.
- **Realtime is ready late.** The join is acknowledged before the change feed is live; the
  system message "Subscribed to PostgreSQL" says when it is, and the feed passes it on as
  ``Ready`` (``subscribe`` catches up again then).
- **Error payloads.** A change too large for Realtime (413) arrives with its big columns
  stripped, and one the subscriber may not read (401) without a record: both become a hint to
  re-read the row by id (or are skipped, with a log line, when there is no id).

Live feed: a Realtime channel with one ``postgres_changes`` binding per table. Realtime drops
changes while a socket is down, so the feed does not reconnect by itself: any drop ends the
iterator with ``TransportError`` and ``subscribe`` reconnects and catches up by query.
Worker wake-ups (``wakeups=True``) are not available over Supabase HTTP (NOTIFY needs a database
connection): workers poll, or are given a database URL, where LISTEN delivers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, TypeVar, cast

import httpx
from postgrest.exceptions import APIError
from postgrest.types import CountMethod
from realtime import AsyncRealtimeClient
from realtime.types import RealtimePostgresChangesListenEvent, RealtimeSubscribeStates
from supabase import AsyncClient, AsyncClientOptions, Client, acreate_client

from ..calls import Call
from ..config import Settings
from ..errors import PermissionDenied, PulserOpsError, TransportError
from ..files import FileStore
from ..tokens import Tokens
from .base import FeedItem, Hint, Ready, Record, with_retry, with_retry_async
from .paging import Pager, Request, RowCap
from .supabase_files import SupabaseFileStore
from .supabase_http import (
    SyncClients,
    async_http,
    credentials,
    refused_key,
    rows_of,
    rpc_body,
    sync_http,
    translate_api_error,
    translate_http_error,
)

T = TypeVar("T")
log = logging.getLogger("pulser_ops.supabase")

#: How long joining a Realtime channel may take before the feed counts as down.
JOIN_TIMEOUT_SECONDS = 15.0
#: The system message with which Realtime says a channel's change feed is live.
READY_MESSAGE = "Subscribed to PostgreSQL"
#: Which changes each table's binding asks for: events are only ever inserted (their DELETEs,
#: one per row when runs are pruned, would only cost Realtime quota).
EVENTS_OF = {"run_events": RealtimePostgresChangesListenEvent.Insert}

__all__ = ["AsyncSupabaseTransport", "SupabaseFileStore", "SupabaseTransport"]


def _rpc(client: Client | AsyncClient, req: Request) -> Any:
    """The postgrest-py request builder for one request of a call."""
    builder = client.rpc(
        req.call.fn, rpc_body(req.call), count=CountMethod.exact if req.counted else None
    )
    if req.offset is not None:
        builder = builder.range(req.offset, req.offset + (req.limit or 1) - 1)
    return builder


def _reply(call: Call[Any], response: Any) -> tuple[Sequence[Mapping[str, Any]], int | None]:
    return rows_of(call.fn, response.data), response.count


class SupabaseTransport:
    """Synchronous driver over PostgREST; ``files`` shares its HTTP and supabase-py client."""

    def __init__(self, settings: Settings) -> None:
        credentials(settings)  # configured at all?
        self.settings = settings
        self.row_cap = RowCap(settings.max_rows)
        self._http = sync_http(settings)
        self.client = SyncClients(settings, self._http)
        self.files: FileStore = SupabaseFileStore(settings, clients=self.client)

    @property
    def max_rows(self) -> int | None:
        return self.row_cap.value

    def _send(self, req: Request) -> tuple[Sequence[Mapping[str, Any]], int | None]:
        def once() -> tuple[Sequence[Mapping[str, Any]], int | None]:
            try:
                return _reply(req.call, _rpc(self.client(), req).execute())
            except APIError as e:
                raise translate_api_error(e) from None
            except httpx.HTTPError as e:
                raise translate_http_error(e) from None

        return with_retry(req.call, once)

    def execute(self, call: Call[T]) -> T:
        pager = Pager(call, self.row_cap)
        req: Request | None = pager.first()
        while req is not None:
            try:
                rows, total = self._send(req)
            except PulserOpsError as e:
                raise pager.failed(e) from None
            req = pager.feed(req, rows, total)
        return pager.result()

    def close(self) -> None:
        self._http.close()


@dataclass(frozen=True)
class _Down:
    """The channel or socket went away; the iterator turns this into ``TransportError``
    (or ``PermissionDenied`` when the server refused the token)."""

    reason: str

    @property
    def refused(self) -> bool:
        return "InvalidJWTToken" in self.reason or "Fields `role` and `exp`" in self.reason

    def error(self) -> PulserOpsError:
        if self.refused:
            return PermissionDenied(f"Supabase Realtime refused the token: {self.reason}")
        return TransportError(self.reason)


class AsyncSupabaseTransport:
    """Asynchronous driver over PostgREST, with a Realtime feed for subscriptions."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.row_cap = RowCap(settings.max_rows)
        self._tokens = Tokens(settings)
        self._http = http
        self._client: tuple[str | None, AsyncClient] | None = None
        # FileStore is synchronous (the async client runs it in a thread): its own sync client.
        self._files = SupabaseFileStore(settings)
        self.files: FileStore = self._files

    @property
    def max_rows(self) -> int | None:
        return self.row_cap.value

    @classmethod
    async def open(cls, settings: Settings) -> AsyncSupabaseTransport:
        credentials(settings)
        transport = cls(settings, async_http(settings))
        await transport.client()
        return transport

    async def client(self) -> AsyncClient:
        token = await self._tokens.acurrent()
        held = self._client
        if held is None or held[0] != token:
            url, key, headers = credentials(self.settings, token)
            options = AsyncClientOptions(
                headers=headers, httpx_client=self._http, postgrest_client_retry=False
            )
            held = (token, await acreate_client(url, key, options))
            self._client = held
        return held[1]

    async def _send(self, req: Request) -> tuple[Sequence[Mapping[str, Any]], int | None]:
        async def once() -> tuple[Sequence[Mapping[str, Any]], int | None]:
            try:
                return _reply(req.call, await _rpc(await self.client(), req).execute())
            except APIError as e:
                raise translate_api_error(e) from None
            except httpx.HTTPError as e:
                raise translate_http_error(e) from None

        return await with_retry_async(req.call, once)

    async def execute(self, call: Call[T]) -> T:
        pager = Pager(call, self.row_cap)
        req: Request | None = pager.first()
        while req is not None:
            try:
                rows, total = await self._send(req)
            except PulserOpsError as e:
                raise pager.failed(e) from None
            req = pager.feed(req, rows, total)
        return pager.result()

    def _realtime(self) -> AsyncRealtimeClient:
        """A socket of its own per feed: closing one feed never disturbs another, and the
        client's auto-reconnect is off because a reconnect would silently skip changes."""
        url, key, _ = credentials(self.settings)
        return AsyncRealtimeClient(
            f"{url}/realtime/v1",
            token=key,
            auto_reconnect=False,
            max_retries=1,
            timeout=int(JOIN_TIMEOUT_SECONDS),
        )

    async def _keep_token_fresh(self, rt: AsyncRealtimeClient) -> None:
        """Re-authenticate the channel before its token expires (Realtime closes it then)."""
        while (delay := self._tokens.next_refresh()) is not None:
            await asyncio.sleep(delay)
            token = await self._tokens.acurrent()
            await rt.set_auth(token)

    @asynccontextmanager
    async def feed(
        self, tables: frozenset[str], *, wakeups: bool = False
    ) -> AsyncIterator[AsyncIterator[FeedItem | str]]:
        """``Record`` items for every change of ``public.<table>`` this caller may see,
        ``Ready`` when Realtime says the feed is live.

        ``wakeups`` is ignored: lane wake-ups are NOTIFYs, which need a database connection.
        """
        rt = self._realtime()
        # The join carries the access token; Realtime checks RLS per subscriber with its claims.
        await rt.set_auth(await self._tokens.acurrent())
        inbox: asyncio.Queue[FeedItem | _Down] = asyncio.Queue()
        joined = asyncio.Event()
        channel = rt.channel(f"pulser-ops-{uuid.uuid4().hex}")
        for table in sorted(tables):
            channel.on_postgres_changes(
                EVENTS_OF.get(table, RealtimePostgresChangesListenEvent.All),
                _on_change(inbox),
                table=table,
                schema="public",
            )

        def on_system(payload: Any) -> None:
            if getattr(payload, "message", None) == READY_MESSAGE:
                inbox.put_nowait(Ready())

        channel.on_system(on_system)

        def on_state(state: RealtimeSubscribeStates, err: Exception | None) -> None:
            if state == RealtimeSubscribeStates.SUBSCRIBED:
                joined.set()
            else:
                inbox.put_nowait(_Down(f"Realtime channel {state.value}: {err or 'no detail'}"))

        refresher: asyncio.Task[None] | None = None
        try:
            try:
                await asyncio.wait_for(channel.subscribe(on_state), JOIN_TIMEOUT_SECONDS)
            except PulserOpsError:
                raise
            except Exception as e:  # websockets / OS errors / timeouts while connecting
                raise _connect_error(self.settings, e) from None
            if not joined.is_set():
                down = inbox.get_nowait() if not inbox.empty() else None
                if isinstance(down, _Down):
                    if down.refused:
                        raise down.error()
                    reason = down.reason
                else:
                    reason = "join not acknowledged"
                raise TransportError(f"cannot subscribe to Supabase Realtime: {reason}")
            if self._tokens.refreshing:
                refresher = asyncio.create_task(self._keep_token_fresh(rt))

            async def items() -> AsyncIterator[FeedItem | str]:
                while True:
                    item = await inbox.get()
                    if isinstance(item, _Down):
                        raise TransportError(item.reason)
                    yield item

            yield items()
        finally:
            if refresher is not None:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError, PulserOpsError):
                    await refresher
            # Leave politely when the socket is still up; after a drop there is nobody to tell,
            # and waiting for a leave reply would only delay the reconnect.
            if rt.is_connected:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(rt.remove_all_channels(), 5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(rt.close(), 5)

    async def close(self) -> None:
        held = self._client
        if held is not None:
            with contextlib.suppress(Exception):
                await held[1].realtime.close()
        await self._http.aclose()
        await asyncio.to_thread(self._files.close)


def _connect_error(settings: Settings, e: Exception) -> PulserOpsError:
    """Why the Realtime socket could not be opened: a refused key (the gateway's 401 on the
    upgrade) is a configuration error, not something to retry."""
    response = getattr(e, "response", None)
    status = getattr(response, "status_code", None)
    if status == 401:
        body: Any = None
        with contextlib.suppress(ValueError, TypeError):
            body = json.loads(bytes(getattr(response, "body", b"") or b""))
        err = refused_key(settings, body)
        if err is not None:
            return err
        said = body.get("error") if isinstance(body, dict) else None
        return PermissionDenied(f"Supabase Realtime refused the connection: {said or e}")
    return TransportError(f"cannot subscribe to Supabase Realtime: {e}")


_KINDS: frozenset[str] = frozenset({"INSERT", "UPDATE", "DELETE"})
#: The column that names, for a hint, the run (or worker) a change of each table is about.
_HINT_KEY = {"runs": "id", "workers": "id"}


def _on_change(inbox: asyncio.Queue[FeedItem | _Down]) -> Callable[[Any], None]:
    """Realtime calls back synchronously on the loop (realtime-py #225): just enqueue."""

    def callback(payload: Any) -> None:
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            return
        raw = data.get("type") or data.get("eventType") or ""
        # realtime-py parses ``type`` into a str Enum, whose str() is its qualified name.
        kind = str(raw.value if isinstance(raw, Enum) else raw)
        if kind not in _KINDS:
            return
        table = str(data.get("table"))
        row = data.get("old_record") if kind == "DELETE" else data.get("record")
        row = dict(row or {})
        if data.get("errors") and kind != "DELETE":
            # 413 (big columns stripped) or 401 (no record): the row is not what the payload
            # says. Re-read it by id when the payload still names it, else skip it.
            key = row.get(_HINT_KEY.get(table, "run_id"))
            if key is None:
                log.warning("Realtime sent %s %s without a row (%s); skipped",
                            kind, table, data.get("errors"))  # fmt: skip
                return
            inbox.put_nowait(Hint(table, (str(key),)))
            return
        inbox.put_nowait(Record(table, cast(Literal["INSERT", "UPDATE", "DELETE"], kind), row))

    return callback

"""Supabase over HTTP: RPC through PostgREST, files through Storage, live changes through
Realtime, all with supabase-py.

Every ``Call`` is ``POST /rest/v1/rpc/<fn>`` with its named arguments as a JSON object, so the
same SQL functions run with the same arguments as over a direct connection, under the caller's
JWT (service role key, or a user's access token with the project key as ``apikey``, so RLS
applies). supabase-py never retries a POST; calls marked ``retry_safe`` are retried here, via
``with_retry``, on transport failures only.

Live feed: a Realtime channel with one ``postgres_changes`` binding per table. Realtime drops
changes while a socket is down, so the feed does not reconnect by itself: any drop ends the
iterator with ``TransportError`` and ``subscribe`` reconnects and catches up by query.
Worker wake-ups (``wakeups=True``) are not available over Supabase HTTP (NOTIFY needs a database
connection): workers poll, or are given a database URL, where LISTEN delivers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, TypeVar, cast

import httpx
from postgrest.exceptions import APIError
from realtime import AsyncRealtimeClient
from realtime.types import RealtimePostgresChangesListenEvent, RealtimeSubscribeStates
from supabase import (
    AsyncClient,
    AsyncClientOptions,
    Client,
    ClientOptions,
    acreate_client,
    create_client,
)

from ..calls import Call
from ..config import Settings
from ..errors import TransportError
from ..files import FileStore
from .base import FeedItem, Record, with_retry, with_retry_async
from .supabase_files import SupabaseFileStore
from .supabase_http import (
    async_http,
    credentials,
    rows_of,
    rpc_body,
    sync_http,
    translate_api_error,
    translate_http_error,
)

T = TypeVar("T")

#: How long joining a Realtime channel may take before the feed counts as down.
JOIN_TIMEOUT_SECONDS = 15.0

__all__ = ["AsyncSupabaseTransport", "SupabaseFileStore", "SupabaseTransport"]


class SupabaseTransport:
    """Synchronous driver over PostgREST; ``files`` shares its HTTP client."""

    def __init__(self, settings: Settings) -> None:
        url, key, headers = credentials(settings)
        self.settings = settings
        self._http = sync_http()
        self._client: Client = create_client(
            url,
            key,
            ClientOptions(headers=headers, httpx_client=self._http, postgrest_client_retry=False),
        )
        self.files: FileStore = SupabaseFileStore(settings, client=self._client)

    def execute(self, call: Call[T]) -> T:
        body = rpc_body(call)

        def send() -> T:
            try:
                data = self._client.rpc(call.fn, body).execute().data
            except APIError as e:
                raise translate_api_error(e) from None
            except httpx.HTTPError as e:
                raise translate_http_error(e) from None
            return call.decode.rows(rows_of(call.fn, data))

        return with_retry(call, send)

    def close(self) -> None:
        self._http.close()


@dataclass(frozen=True)
class _Down:
    """The channel or socket went away; the iterator turns this into ``TransportError``."""

    reason: str


class AsyncSupabaseTransport:
    """Asynchronous driver over PostgREST, with a Realtime feed for subscriptions."""

    def __init__(self, settings: Settings, client: AsyncClient, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self._client = client
        self._http = http
        # FileStore is synchronous (the async client runs it in a thread): its own sync client.
        self._files = SupabaseFileStore(settings)
        self.files: FileStore = self._files

    @classmethod
    async def open(cls, settings: Settings) -> AsyncSupabaseTransport:
        url, key, headers = credentials(settings)
        http = async_http()
        client = await acreate_client(
            url,
            key,
            AsyncClientOptions(headers=headers, httpx_client=http, postgrest_client_retry=False),
        )
        return cls(settings, client, http)

    async def execute(self, call: Call[T]) -> T:
        body = rpc_body(call)

        async def send() -> T:
            try:
                data = (await self._client.rpc(call.fn, body).execute()).data
            except APIError as e:
                raise translate_api_error(e) from None
            except httpx.HTTPError as e:
                raise translate_http_error(e) from None
            return call.decode.rows(rows_of(call.fn, data))

        return await with_retry_async(call, send)

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

    @asynccontextmanager
    async def feed(
        self, tables: frozenset[str], *, wakeups: bool = False
    ) -> AsyncIterator[AsyncIterator[FeedItem | str]]:
        """``Record`` items for every change of ``public.<table>`` this caller may see.

        ``wakeups`` is ignored: lane wake-ups are NOTIFYs, which need a database connection.
        """
        rt = self._realtime()
        # The join carries the access token; Realtime checks RLS per subscriber with its claims.
        await rt.set_auth(self.settings.access_token or self.settings.supabase_key)
        inbox: asyncio.Queue[Record | _Down] = asyncio.Queue()
        joined = asyncio.Event()
        channel = rt.channel(f"pulser-ops-{uuid.uuid4().hex}")
        for table in sorted(tables):
            channel.on_postgres_changes(
                RealtimePostgresChangesListenEvent.All,
                _on_change(inbox),
                table=table,
                schema="public",
            )

        def on_state(state: RealtimeSubscribeStates, err: Exception | None) -> None:
            if state == RealtimeSubscribeStates.SUBSCRIBED:
                joined.set()
            else:
                inbox.put_nowait(_Down(f"Realtime channel {state.value}: {err or 'no detail'}"))

        try:
            try:
                await asyncio.wait_for(channel.subscribe(on_state), JOIN_TIMEOUT_SECONDS)
            except TransportError:
                raise
            except Exception as e:  # websockets / OS errors / timeouts while connecting
                raise TransportError(f"cannot subscribe to Supabase Realtime: {e}") from None
            if not joined.is_set():
                down = inbox.get_nowait() if not inbox.empty() else None
                reason = down.reason if isinstance(down, _Down) else "join not acknowledged"
                raise TransportError(f"cannot subscribe to Supabase Realtime: {reason}")

            async def items() -> AsyncIterator[FeedItem | str]:
                while True:
                    item = await inbox.get()
                    if isinstance(item, _Down):
                        raise TransportError(item.reason)
                    yield item

            yield items()
        finally:
            # Leave politely when the socket is still up; after a drop there is nobody to tell,
            # and waiting for a leave reply would only delay the reconnect.
            if rt.is_connected:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(rt.remove_all_channels(), 5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(rt.close(), 5)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.realtime.close()
        await self._http.aclose()
        await asyncio.to_thread(self._files.close)


_KINDS: frozenset[str] = frozenset({"INSERT", "UPDATE", "DELETE"})


def _on_change(inbox: asyncio.Queue[Record | _Down]) -> Callable[[Any], None]:
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
        row = data.get("old_record") if kind == "DELETE" else data.get("record")
        inbox.put_nowait(
            Record(
                str(data.get("table")),
                cast(Literal["INSERT", "UPDATE", "DELETE"], kind),
                dict(row or {}),
            )
        )

    return callback

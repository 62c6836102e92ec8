"""Which ``AsyncClient`` serves a principal.

Locally (embedded or a database URL) one client serves everyone: the server's own connection.
In front of Supabase each operator gets a client that carries their own access token (the
project's public key as ``apikey``), cached per token, so RLS applies to every call exactly as
for the SDK. The service key is never used on an operator's behalf.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from .. import aconnect
from ..client import AsyncClient
from ..errors import ConfigurationError
from .auth import Principal

#: Open operator clients kept (one per live access token); the oldest is closed beyond this.
MAX_SESSION_CLIENTS = 64


class ClientSource:
    def __init__(
        self,
        server: AsyncClient | None,
        *,
        supabase_url: str | None = None,
        public_key: str | None = None,
        connect: Callable[..., Awaitable[AsyncClient]] = aconnect,
    ) -> None:
        self.server = server
        self._supabase_url = supabase_url
        self._public_key = public_key
        self._connect = connect
        self._sessions: OrderedDict[str, AsyncClient] = OrderedDict()
        self._lock = asyncio.Lock()

    async def for_principal(self, who: Principal) -> AsyncClient:
        if who.session is None:
            if self.server is None:
                raise ConfigurationError("the control room has no database client")
            return self.server
        key = who.client_key
        async with self._lock:
            client = self._sessions.get(key)
            if client is not None:
                self._sessions.move_to_end(key)
                return client
            if not self._supabase_url or not self._public_key:
                raise ConfigurationError("Supabase sign-in needs SUPABASE_URL and a public key")
            client = await self._connect(
                supabase_url=self._supabase_url,
                supabase_key=self._public_key,
                access_token=who.session.access_token,
            )
            self._sessions[key] = client
            while len(self._sessions) > MAX_SESSION_CLIENTS:
                _, old = self._sessions.popitem(last=False)
                asyncio.get_running_loop().create_task(_close(old))
            return client

    async def forget(self, client_key: str) -> None:
        client = self._sessions.pop(client_key, None)
        if client is not None:
            await _close(client)

    async def close(self) -> None:
        for client in self._sessions.values():
            await _close(client)
        self._sessions.clear()


async def _close(client: AsyncClient) -> None:
    with contextlib.suppress(Exception):
        await client.close()

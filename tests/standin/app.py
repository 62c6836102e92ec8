"""The Starlette application: routes for /rest/v1, /storage/v1 and /realtime/v1.

One app per stand-in instance; it owns a psycopg pool (opened in the lifespan,
so it lives on the server's event loop) and the Realtime change feed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from . import auth, rpc, storage, tables
from .db import make_pool
from .gateway import Gateway, Keys
from .gotrue import GoTrue
from .realtime import Realtime


class StandInApp:
    """Holds shared state and builds the ASGI app."""

    def __init__(self, db_url: str, jwt_secret: str, storage_dir: Path,
                 public_url: str) -> None:
        self.db_url = db_url
        self.jwt_secret = jwt_secret
        self.keys = Keys(jwt_secret, auth.make_key(jwt_secret, "anon"),
                         auth.make_key(jwt_secret, "service_role"))
        self.pool = make_pool(db_url)
        self.cache = rpc.SchemaCache(self.pool)
        #: The Data API's ``max_rows`` and per-role timeouts; tests may change them.
        self.rest = rpc.RestConfig()
        self.storage = storage.Storage(self.pool, jwt_secret, storage_dir)
        self.realtime = Realtime(db_url, self.pool, jwt_secret)
        self.gotrue = GoTrue(jwt_secret)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.public_url = public_url
        self.gateway = Gateway(Starlette(routes=self._routes(), lifespan=self._lifespan),
                               self.keys)
        self.asgi = self.gateway

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.loop = asyncio.get_running_loop()
        await self.pool.open(wait=True)
        await self.realtime.start()
        try:
            yield
        finally:
            await self.realtime.stop()
            await self.pool.close()

    def _routes(self) -> list[Route | WebSocketRoute]:
        async def rpc_route(request: Request) -> Response:
            return await rpc.call(request, self.pool, self.cache, self.jwt_secret, self.rest)

        async def table_route(request: Request) -> Response:
            return await tables.read(request, self.pool, self.jwt_secret, self.rest)

        async def websocket_route(ws: WebSocket) -> None:
            await self.realtime.serve(ws)

        return [
            Route("/rest/v1/rpc/{fn}", rpc_route, methods=["GET", "POST", "HEAD"]),
            Route("/rest/v1/{table}", table_route, methods=["GET", "HEAD"]),
            *self.storage.routes(),
            *self.gotrue.routes(),
            WebSocketRoute("/realtime/v1/websocket", websocket_route),
        ]

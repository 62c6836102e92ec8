"""``create_app``: the control room as a standalone FastAPI app (what ``pulser-ops ui`` serves,
and what ``app.mount("/ops", create_app(client))`` embeds)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.params import Depends

from ..client import AsyncClient
from ..config import Settings
from .config import WebConfig
from .room import ControlRoom


def create_app(
    client: AsyncClient | None = None,
    *,
    config: WebConfig | None = None,
    settings: Settings | None = None,
    listen_client: AsyncClient | None = None,
    dependencies: Sequence[Depends] = (),
    room: ControlRoom | None = None,
) -> FastAPI:
    """The board over ``client`` (or a client resolved from ``settings`` / the environment at
    startup). ``dependencies`` guard every route, e.g. the host app's own auth."""
    room = room or ControlRoom(
        client, config=config, settings=settings, listen_client=listen_client
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with room:
            yield

    app = FastAPI(
        title=room.config.title, lifespan=lifespan, docs_url=None, redoc_url=None,
        openapi_url=None,
    )  # fmt: skip
    app.state.room = room
    app.include_router(room.router(dependencies=dependencies))
    return app

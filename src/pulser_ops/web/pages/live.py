"""``/events``: the change signal stream every page listens to (one per tab).

Tabs never hold a database listener: they hold a queue in the process's one broadcaster."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse
from starlette.responses import Response

from ..broadcaster import KEEPALIVE_SECONDS

if TYPE_CHECKING:
    from ..room import ControlRoom


def add(router: APIRouter, room: ControlRoom) -> None:
    @router.get("/events", name="ops.events", include_in_schema=False)
    async def events(request: Request) -> Response:
        await room.principal(request)
        return EventSourceResponse(
            room.broadcaster.stream(),
            ping=int(KEEPALIVE_SECONDS),
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

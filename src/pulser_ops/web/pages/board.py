"""The Runboard: a column per lane (depth by status, oldest queued, 1-hour throughput, paused
flag and concurrency cap), running runs as cards with a heartbeat, the stuck-run banner and
the firing alert incidents.

One SQL call (``board_snapshot``) per refresh, shared by every tab of the same identity."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from ...models import LANES
from .. import charts

if TYPE_CHECKING:
    from ...client import AsyncClient
    from ...models import Alert, BoardSnapshot
    from ..auth import Principal
    from ..room import ControlRoom


async def snapshot(room: ControlRoom, who: Principal, client: AsyncClient) -> BoardSnapshot:
    return await room.reads.get((who.client_key, "board"), client.lanes.board)


async def firing(room: ControlRoom, who: Principal, client: AsyncClient) -> list[Alert]:
    """The firing alert incidents (``pulser-ops alerts`` or the sweeper's ``--alerts``)."""
    return await room.reads.get(
        (who.client_key, "alerts"), partial(client.alerts.list, "firing", limit=20)
    )


def _context(snap: BoardSnapshot, alerts: list[Alert]) -> dict[str, object]:
    lanes = []
    for lane in snap.lanes:
        depth = charts.stacked_bar(
            [
                ("queued", lane.queued),
                ("scheduled", lane.scheduled),
                ("running", lane.running),
            ]
        )
        spark = charts.sparkline(
            lane.throughput,
            highlight=lane.failures,
            label=f"lane {lane.lane}: {sum(lane.throughput)} finished in the last hour",
        )
        cards = [r for r in snap.running if r.lane == lane.lane]
        lanes.append({"lane": lane, "depth": depth, "spark": spark, "cards": cards})
    critical = any(a.severity == "critical" for a in alerts)
    return {"snap": snap, "lanes": lanes, "alerts": alerts, "alerts_critical": critical}


def add(router: APIRouter, room: ControlRoom) -> None:
    async def context(who: Principal, client: AsyncClient) -> dict[str, object]:
        snap, alerts = await asyncio.gather(
            snapshot(room, who, client), firing(room, who, client)
        )
        return _context(snap, alerts)

    @router.get("/", name="ops.board")
    async def board_page(request: Request) -> Response:
        who, client = await room.client(request)
        ctx = await context(who, client)
        return room.render(request, "board.html", {"page": "ops.board", **ctx})

    @router.get("/partials/board", name="ops.board_partial")
    async def board_partial(request: Request) -> Response:
        who, client = await room.client(request)
        return room.render(request, "partials/board.html", await context(who, client))

    @router.post("/lanes/{lane}", name="ops.lane")
    async def set_lane(
        request: Request,
        lane: str,
        action: Annotated[str, Form()],
        max_running: Annotated[str, Form()] = "",
    ) -> Response:
        who, client = await room.acting(request, admin=True)
        if lane not in LANES:
            from ...errors import InvalidInput

            raise InvalidInput(f"lane: unknown lane {lane!r}")
        if action == "pause":
            await client.lanes.pause(lane)
        elif action == "resume":
            await client.lanes.resume(lane)
        elif action == "cap":
            value = max_running.strip()
            await client.lanes.set_concurrency(lane, int(value) if value.isdigit() else None)
        room.reads.forget()
        return room.render(request, "partials/board.html", await context(who, client))

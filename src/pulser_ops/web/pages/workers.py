"""Workers: host, lanes, version, concurrency, running runs and seconds since the last
heartbeat (coloured by threshold); a worker that stopped heartbeating shows as stale, with
the runs it still holds. Queue depth per lane sits beside it."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...models import RunFilter, RunStatus
from .board import snapshot

if TYPE_CHECKING:
    from ...client import AsyncClient
    from ..auth import Principal
    from ..room import ControlRoom

#: Seconds since last seen: green below, amber up to the stale threshold (the SQL's 60 s).
FRESH_SECONDS = 20


async def _context(room: ControlRoom, who: Principal, client: AsyncClient) -> dict[str, Any]:
    workers = await room.reads.get((who.client_key, "workers"), client.workers.health)
    snap = await snapshot(room, who, client)
    stale_runs = {}
    for w in workers:
        if w.stale and w.running:
            f = RunFilter(status=(RunStatus.RUNNING,), worker=w.id)
            stale_runs[w.id] = await room.reads.get(
                (who.client_key, "worker-runs", w.id), partial(client.runs.search, f, limit=50)
            )
    order = sorted(workers, key=lambda w: (w.status == "stopped", not w.stale, w.id))
    return {
        "workers": order,
        "lanes": snap.lanes,
        "stale_runs": stale_runs,
        "fresh_seconds": FRESH_SECONDS,
        "alive": sum(1 for w in workers if w.status != "stopped" and not w.stale),
        "stale": sum(1 for w in workers if w.stale),
    }


def add(router: APIRouter, room: ControlRoom) -> None:
    @router.get("/workers", name="ops.workers")
    async def workers_page(request: Request) -> Response:
        who, client = await room.client(request)
        ctx = await _context(room, who, client)
        return room.render(request, "workers.html", {"page": "ops.workers", **ctx})

    @router.get("/partials/workers", name="ops.workers_partial")
    async def workers_partial(request: Request) -> Response:
        who, client = await room.client(request)
        return room.render(request, "partials/workers.html", await _context(room, who, client))

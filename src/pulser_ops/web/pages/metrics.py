"""``/metrics``: the fleet's Prometheus gauges (``fleet_metrics``, at scrape time) and this
server's own process metrics (``process_*``, ``pulser_runs_enqueued_total`` of the re-runs it
made, ...), behind the board's sign-in: Prometheus sends the access token as a bearer token or
the Basic user (``authorization`` / ``basic_auth`` in its scrape config)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...errors import PulserOpsError

if TYPE_CHECKING:
    from ..room import ControlRoom

log = logging.getLogger("pulser_ops.web")

#: statement_timeout of the scrape's query; the answer comes from estimates after it.
TIMEOUT_MS = 2000


def add(router: APIRouter, room: ControlRoom) -> None:
    @router.get("/metrics", name="ops.metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        from ...metrics.fleet import exposition

        _who, client = await room.client(request)
        started = time.monotonic()
        try:
            snap = await client.monitoring.fleet(timeout_ms=TIMEOUT_MS)
        except PulserOpsError as e:
            log.warning("/metrics: cannot read the fleet: %s", e)
            snap = None
        body = exposition(snap, time.monotonic() - started)
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

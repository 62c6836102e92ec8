"""Run detail: params, result, error, attempts timeline, steps, artifacts, events; a live log
over SSE resumable by ``Last-Event-ID`` (= event seq) that closes when the run ends; cancel
with confirmation; "run now" for a run that waits; re-run with the same or edited params
(checked against the template's schema by the SQL that enqueues it)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Form, Request
from markupsafe import Markup
from sse_starlette import EventSourceResponse
from starlette.responses import Response

from ...errors import InvalidInput, NotFound
from ...models import LANES, Artifact, Run, RunEvent
from .. import timeline
from ..ids import uuid_or_404
from ..logtail import Closing
from .artifacts import Links, attempt_of, side_of

if TYPE_CHECKING:
    from ...client import AsyncClient
    from ..auth import Principal
    from ..room import ControlRoom

#: Events rendered with the page; the live log continues after the last of them.
FIRST_EVENTS = 1000


def log_line(room: ControlRoom, ev: RunEvent) -> str:
    """One event as HTML (escaped by the template)."""
    return room.templates.get_template("partials/log_line.html").render(ev=ev)


async def _summary(
    room: ControlRoom, request: Request, who: Principal, client: AsyncClient, run_id: UUID
) -> dict[str, Any]:
    key = who.client_key
    run = await room.reads.get((key, "run", run_id), lambda: client.runs.get(run_id))
    steps = await room.reads.get((key, "steps", run_id), lambda: client.runs.steps(run_id))
    artifacts = await room.reads.get(
        (key, "artifacts", run_id), lambda: client.artifacts.list(run_id)
    )
    links = Links(request)

    def artifact_url(a: Artifact, raw: bool = False, partial: bool = False) -> str:
        if raw:
            return links.raw(a.run_id, a.name, attempt_of(a), download=True)
        if partial:
            return links.preview(a.run_id, a.name, attempt_of(a))
        return links.view(a.run_id, a.name, attempt_of(a))

    return {
        "run": run, "steps": steps, "artifacts": artifacts, "artifact_url": artifact_url,
        "artifact_side": side_of, "preview": request.query_params.get("preview") == "1",
    }  # fmt: skip


async def _timeline(
    room: ControlRoom, who: Principal, client: AsyncClient, run: Run
) -> list[timeline.Moment]:
    events = await room.reads.get(
        (who.client_key, "timeline", run.id), lambda: client.events.timeline(run.id)
    )
    return timeline.build(run, events)


def add(router: APIRouter, room: ControlRoom) -> None:
    @router.get("/runs/{run_id}", name="ops.run")
    async def run_page(request: Request, run_id: str) -> Response:
        who, client = await room.client(request)
        rid = uuid_or_404(run_id)
        ctx = await _summary(room, request, who, client, rid)
        events = await client.events.list(rid, limit=FIRST_EVENTS)
        try:
            template = await client.templates.get(ctx["run"].template)
        except NotFound:
            template = None
        moments = await _timeline(room, who, client, ctx["run"])
        return room.render(
            request,
            "run.html",
            {
                "page": "ops.runs",
                **ctx,
                "preview": True,
                "events": events,
                "timeline": moments,
                "after_seq": events[-1].seq if events else 0,
                "more_events": len(events) >= FIRST_EVENTS,
                "template": template,
                "lanes": LANES,
                "params_json": json.dumps(ctx["run"].params, indent=2, ensure_ascii=False),
                "schema_json": json.dumps(template.params_schema, indent=2) if template else "",
            },
        )

    @router.get("/partials/runs/{run_id}", name="ops.run_partial")
    async def run_partial(request: Request, run_id: str) -> Response:
        who, client = await room.client(request)
        ctx = await _summary(room, request, who, client, uuid_or_404(run_id))
        return room.render(request, "partials/run_summary.html", ctx)

    @router.get("/partials/runs/{run_id}/timeline", name="ops.run_timeline")
    async def run_timeline(request: Request, run_id: str) -> Response:
        """The attempts timeline again, as the run moves on (the page's live refresh)."""
        who, client = await room.client(request)
        rid = uuid_or_404(run_id)
        run = await room.reads.get((who.client_key, "run", rid), lambda: client.runs.get(rid))
        moments = await _timeline(room, who, client, run)
        return room.render(request, "partials/run_timeline.html", {"timeline": moments})

    @router.get("/runs/{run_id}/log", name="ops.run_log", include_in_schema=False)
    async def run_log(request: Request, run_id: str) -> Response:
        who, client = await room.client(request)
        rid = uuid_or_404(run_id)
        # Where to resume: the browser's Last-Event-ID on a reconnect, else the page's own.
        after = 0
        for raw in (request.headers.get("last-event-id"), request.query_params.get("after")):
            if raw and raw.isdigit():
                after = max(after, int(raw))

        async def stream() -> Any:
            async for item in room.tails.follow(who.client_key, client, rid, after):
                if isinstance(item, Closing):
                    yield {
                        "event": "end",
                        "data": Markup('<div class="log-end">{}</div>').format(item.reason),
                    }
                    return
                yield {"event": "log", "id": str(item.seq), "data": log_line(room, item)}

        return EventSourceResponse(
            stream(), ping=15, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    async def acted(
        request: Request,
        run_id: str,
        act: Callable[[AsyncClient, UUID, Principal], Awaitable[object]],
    ) -> Response:
        """Do ``act`` to the run, then answer with its summary as it is now; the page's other
        regions (the timeline) refresh at once rather than at the next change signal."""
        who, client = await room.acting(request)
        rid = uuid_or_404(run_id)
        await act(client, rid, who)
        room.reads.forget()
        response = room.render(
            request, "partials/run_summary.html", await _summary(room, request, who, client, rid)
        )
        response.headers["HX-Trigger"] = "ops-refresh"
        return response

    @router.post("/runs/{run_id}/cancel", name="ops.run_cancel")
    async def cancel(
        request: Request, run_id: str, reason: Annotated[str, Form()] = ""
    ) -> Response:
        why = reason.strip()
        return await acted(request, run_id, lambda client, rid, who: client.runs.cancel(
            rid, reason=why or f"cancelled by {who.name}"))  # fmt: skip

    @router.post("/runs/{run_id}/run-now", name="ops.run_now")
    async def run_now(request: Request, run_id: str) -> Response:
        return await acted(request, run_id, lambda client, rid, _: client.runs.run_now(rid))

    @router.post("/runs/{run_id}/rerun", name="ops.run_rerun")
    async def rerun(
        request: Request,
        run_id: str,
        params: Annotated[str, Form()] = "",
        lane: Annotated[str, Form()] = "",
    ) -> Response:
        _, client = await room.acting(request)
        rid = uuid_or_404(run_id)
        edited: dict[str, Any] | None = None
        if params.strip():
            try:
                value = json.loads(params)
            except ValueError as e:
                raise InvalidInput(f"params: not JSON ({e})") from None
            if not isinstance(value, dict):
                raise InvalidInput("params: expected a JSON object")
            edited = value
        fresh = await client.runs.rerun(rid, edited, lane=lane or None)
        room.reads.forget()
        target = str(request.url_for("ops.run", run_id=str(fresh.id)))
        response = Response(status_code=204, headers={"HX-Redirect": target})
        return room.finish(request, response)

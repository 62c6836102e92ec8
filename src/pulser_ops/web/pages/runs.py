"""Runs: filters in the URL, keyset pages, a count that stays fast at millions of rows, bulk
actions (on the selection or on everything matching, previewed, confirmed and capped), and a
streamed CSV/JSON export of the filtered list."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from ...errors import InvalidInput
from ..filters import ParsedFilter, cursor_of, parse, with_cursor

if TYPE_CHECKING:
    from ...client import AsyncClient
    from ..auth import Principal
    from ..room import ControlRoom

EXPORT_PAGE = 1000
EXPORT_COLUMNS = (
    "id", "template", "lane", "status", "attempt", "max_attempts", "priority", "worker_id",
    "created_at", "claimed_at", "finished_at", "error_class", "error", "params", "result",
)  # fmt: skip


async def _list(
    room: ControlRoom, who: Principal, client: AsyncClient, parsed: ParsedFilter, after: str | None
) -> dict[str, Any]:
    f = with_cursor(parsed, after)
    size = room.config.page_size
    key = (who.client_key, "runs", f.model_dump_json(), size)
    rows = await room.reads.get(key, lambda: client.runs.search(f, limit=size + 1))
    more = len(rows) > size
    rows = rows[:size]
    count = await room.reads.get(
        (who.client_key, "count", parsed.filter.model_dump_json()),
        lambda: client.runs.count(parsed.filter),
    )
    nxt = cursor_of(rows[-1].created_at, rows[-1].id) if more and rows else None
    return {"rows": rows, "next": nxt, "count": count, "f": parsed, "after": after or ""}


def _export_row(run: Any) -> dict[str, Any]:
    row = run.model_dump(mode="json")
    return {k: row.get(k) for k in EXPORT_COLUMNS}


async def _all(client: AsyncClient, parsed: ParsedFilter) -> AsyncIterator[list[Any]]:
    f = parsed.filter
    while True:
        page = await client.runs.search(f, limit=EXPORT_PAGE)
        if page:
            yield page
        if len(page) < EXPORT_PAGE:
            return
        last = page[-1]
        f = with_cursor(parsed, cursor_of(last.created_at, last.id))


@dataclass(frozen=True)
class BulkAction:
    """How the confirmation and the result word an action."""

    verb: str  # Cancel 3 runs?
    done: str  # Cancelled 3 runs
    which: str  # the runs it applies to


BULK_ACTIONS = {
    "cancel": BulkAction("Cancel", "Cancelled", "queued or running, not already cancelling"),
    "rerun": BulkAction(
        "Re-enqueue", "Re-enqueued", "failed ones: each gets a new run with the same params"
    ),
    "run_now": BulkAction(
        "Run now", "Moved to now", "queued ones still waiting: run_after or a retry's backoff"
    ),
}


def _bulk_args(form: Any) -> tuple[str, list[str] | None, ParsedFilter]:
    action = str(form.get("action") or "")
    if action not in BULK_ACTIONS:
        raise InvalidInput(f"action: unknown bulk action {action!r}")
    parsed = parse(form)
    if str(form.get("scope") or "") == "filter":
        return action, None, parsed
    ids = [str(v) for v in form.getlist("ids")]
    if not ids:
        raise InvalidInput("select some runs first, or choose “everything matching”")
    return action, ids, parsed


def add(router: APIRouter, room: ControlRoom) -> None:
    @router.get("/runs", name="ops.runs")
    async def runs_page(request: Request) -> Response:
        who, client = await room.client(request)
        parsed = parse(request.query_params)
        ctx = await _list(room, who, client, parsed, request.query_params.get("after"))
        templates = await room.reads.get((who.client_key, "templates"), client.templates.list)
        return room.render(
            request,
            "runs.html",
            {"page": "ops.runs", "templates": templates, "cap": room.config.bulk_cap, **ctx},
        )

    @router.get("/partials/runs", name="ops.runs_partial")
    async def runs_partial(request: Request) -> Response:
        who, client = await room.client(request)
        parsed = parse(request.query_params)
        ctx = await _list(room, who, client, parsed, request.query_params.get("after"))
        response = room.render(request, "partials/runs_table.html", ctx)
        if request.headers.get("hx-trigger") == "filters":
            # A filter changed: the page's URL follows, so the view can be bookmarked.
            query = f"?{parsed.query}" if parsed.query else ""
            response.headers["HX-Push-Url"] = request.url_for("ops.runs").path + query
        return response

    @router.get("/runs/export.{fmt}", name="ops.runs_export")
    async def export(request: Request, fmt: str) -> Response:
        _, client = await room.client(request)
        parsed = parse(request.query_params)
        if fmt not in ("csv", "json"):
            raise InvalidInput("export as csv or json")

        async def csv_body() -> AsyncIterator[str]:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS)
            writer.writeheader()
            async for page in _all(client, parsed):
                for run in page:
                    row = _export_row(run)
                    row["params"] = json.dumps(row["params"], sort_keys=True)
                    row["result"] = None if row["result"] is None else json.dumps(row["result"])
                    writer.writerow(row)
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
            yield buf.getvalue()

        async def json_body() -> AsyncIterator[str]:
            yield "["
            first = True
            async for page in _all(client, parsed):
                for run in page:
                    yield ("" if first else ",\n") + json.dumps(_export_row(run))
                    first = False
            yield "]\n"

        media = "text/csv" if fmt == "csv" else "application/json"
        return StreamingResponse(
            csv_body() if fmt == "csv" else json_body(),
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="runs.{fmt}"'},
        )

    async def bulk_action(request: Request, dry_run: bool) -> tuple[str, Any, Any, Any]:
        _, client = await room.acting(request)
        action, ids, parsed = _bulk_args(await request.form())
        f = None if ids else parsed.filter
        if action == "cancel":
            why = f"bulk cancel from the control room ({parsed.describe()})"
            result = await client.runs.bulk_cancel(
                ids, filter=f, max_runs=room.config.bulk_cap, dry_run=dry_run, reason=why
            )
        else:
            act = client.runs.bulk_rerun if action == "rerun" else client.runs.bulk_run_now
            result = await act(ids, filter=f, max_runs=room.config.bulk_cap, dry_run=dry_run)
        return action, ids, parsed, result

    @router.post("/runs/bulk/preview", name="ops.bulk_preview")
    async def bulk_preview(request: Request) -> Response:
        action, ids, parsed, result = await bulk_action(request, dry_run=True)
        ctx = {"action": action, "act": BULK_ACTIONS[action], "ids": ids, "f": parsed,
               "result": result}  # fmt: skip
        return room.render(
            request, "partials/bulk_confirm.html", {**ctx, "cap": room.config.bulk_cap}
        )

    @router.post("/runs/bulk", name="ops.bulk")
    async def bulk(request: Request) -> Response:
        action, _, _, result = await bulk_action(request, dry_run=False)
        room.reads.forget()
        response = room.render(
            request,
            "partials/bulk_done.html",
            {"action": action, "act": BULK_ACTIONS[action], "result": result},
        )
        response.headers["HX-Trigger"] = "ops-refresh"
        return response

"""Schedules: the list (template, cron expression and what it means, time zone, next run, last
run with its status, the last error, paused or not), pause, resume and delete, and the editor
with a live preview of the next times an expression names.

What an expression means is the control plane's to say, not a copy: the preview is
``schedules.preview`` (the SQL that fires schedules reads the expression the same way), and
saving is ``schedules.upsert``, whose checks (cron, zone, template, params against its schema)
come back next to the field they name. Only admins write schedules (the SQL refuses anyone
else anyway); everyone else sees the list and the editor without controls.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ...errors import InvalidInput, InvalidParams, NotFound, PulserOpsError
from ...models import LANES, Schedule, ScheduleTime
from ..cron_words import describe
from .templates import number_as_typed

if TYPE_CHECKING:
    from ...client import AsyncClient
    from ..auth import Principal
    from ..room import ControlRoom

#: The editor's fields, each with its error slot (``""``: the schedule as a whole).
SLOTS = ("name", "template", "cron", "timezone", "lane", "priority", "params", "enabled",
         "description", "")  # fmt: skip
#: Offered in the time zone box (any zone PostgreSQL knows is accepted).
ZONES = (
    "UTC", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin",
    "Europe/Madrid", "Europe/Rome", "Europe/Amsterdam", "Europe/Stockholm", "Europe/Warsaw",
    "Europe/Athens", "Europe/Helsinki", "Europe/Istanbul", "Europe/Moscow", "Africa/Cairo",
    "Africa/Lagos", "Africa/Johannesburg", "Asia/Dubai", "Asia/Kolkata", "Asia/Bangkok",
    "Asia/Singapore", "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Tokyo", "Asia/Seoul",
    "Australia/Perth", "Australia/Sydney", "Pacific/Auckland", "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires", "America/Mexico_City", "America/New_York",
    "America/Toronto", "America/Chicago", "America/Denver", "America/Phoenix",
    "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu",
)  # fmt: skip
#: Times the preview shows.
PREVIEW_COUNT = 5
NEW_CRON = "0 * * * *"
#: "schedule.lane: ...", "cron: ...", "params.name: ...": the field a message names.
FIELD = re.compile(r"(?:schedule\.)?([a-z_]+)\b")


@dataclass(frozen=True)
class Preview:
    """The next times an expression names, or why it names none."""

    cron: str
    timezone: str
    times: list[ScheduleTime] = field(default_factory=list)
    error: str = ""
    hint: str = ""

    @property
    def words(self) -> str | None:
        return describe(self.cron) if self.times else None


async def preview(client: AsyncClient, cron: str, timezone: str) -> Preview:
    cron, timezone = cron.strip(), timezone.strip() or "UTC"
    if not cron:
        return Preview(cron, timezone, error="cron: type an expression, e.g. 30 2 * * *")
    try:
        times = await client.schedules.preview(cron, timezone, PREVIEW_COUNT)
    except InvalidInput as e:
        return Preview(cron, timezone, error=str(e), hint=e.hint or "")
    return Preview(cron, timezone, times)


@dataclass
class Draft:
    """The editor's contents as typed, and the schedule they make."""

    values: dict[str, str]
    enabled: bool = True
    #: the name of the schedule being edited ("" for a new one)
    existing: str = ""
    problems: dict[str, list[str]] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)

    def add(self, slot: str, message: str) -> None:
        self.problems.setdefault(slot, []).append(message)

    @property
    def problem_count(self) -> int:
        return sum(len(v) for v in self.problems.values())


def draft_of(s: Schedule | None, template: str = "") -> Draft:
    if s is None:
        values = {"name": "", "template": template, "cron": NEW_CRON, "timezone": "UTC",
                  "lane": "", "priority": "0", "params": "{}", "description": ""}  # fmt: skip
        return Draft(values)
    values = {
        "name": s.name, "template": s.template, "cron": s.cron, "timezone": s.timezone,
        "lane": s.lane or "", "priority": str(s.priority), "description": s.description,
        "params": json.dumps(s.params, indent=2, ensure_ascii=False),
    }  # fmt: skip
    return Draft(values, s.enabled, s.name)


def draft_from_form(form: Any) -> Draft:
    d = Draft(
        {k: str(form.get(k) or "") for k in SLOTS if k and k != "enabled"},
        enabled=form.get("enabled") is not None,
        existing=str(form.get("existing") or ""),
    )
    v = d.values
    d.body = {
        "name": v["name"].strip(), "template": v["template"], "cron": v["cron"].strip(),
        "timezone": v["timezone"].strip() or "UTC", "lane": v["lane"] or None,
        "priority": number_as_typed(v["priority"].strip() or "0", int), "enabled": d.enabled,
        "description": v["description"],
    }  # fmt: skip
    text = v["params"].strip()
    try:
        d.body["params"] = json.loads(text) if text else {}
    except ValueError as e:
        d.add("params", f"params: not valid JSON ({e})")
    return d


def slot_of(e: PulserOpsError) -> str:
    """The field a refusal of ``upsert_schedule`` names (its detail, else its message)."""
    if isinstance(e, InvalidParams):
        return "params"
    for text in (e.detail or "", str(e)):
        m = FIELD.match(text)
        if m and m.group(1) in SLOTS:
            return m.group(1)
    return ""


async def _list(room: ControlRoom, who: Principal, client: AsyncClient) -> dict[str, Any]:
    key = who.client_key
    rows = await room.reads.get((key, "schedules"), client.schedules.list)
    ids = sorted({str(s.last_run_id) for s in rows if s.last_run_id})
    runs = (
        await room.reads.get((key, "schedule-runs", tuple(ids)), lambda: client.runs.get_many(ids))
        if ids
        else []
    )
    return {"rows": rows, "runs": {r.id: r for r in runs}, "words": describe}


def add(router: APIRouter, room: ControlRoom) -> None:

    async def editor(
        request: Request, client: AsyncClient, d: Draft, s: Schedule | None, status: int = 200,
        **extra: Any,
    ) -> Response:  # fmt: skip
        templates = await client.templates.list()
        ctx = {
            "page": "ops.schedules", "d": d, "s": s, "templates": templates, "lanes": LANES,
            "zones": ZONES, "slots": SLOTS,
            "preview": await preview(client, d.values["cron"], d.values["timezone"]), **extra,
        }  # fmt: skip
        return room.render(request, "schedule.html", ctx, status)

    async def listing(request: Request, done: str = "") -> Response:
        """The list again; ``done``: what was just done, for the page's banner."""
        who, client = await room.client(request)
        ctx = await _list(room, who, client)
        return room.render(request, "partials/schedules_table.html", {**ctx, "done": done})

    @router.get("/schedules", name="ops.schedules")
    async def list_page(request: Request) -> Response:
        who, client = await room.client(request)
        ctx = await _list(room, who, client)
        return room.render(
            request,
            "schedules.html",
            {"page": "ops.schedules", "message": request.query_params.get("m"), **ctx},
        )

    @router.get("/partials/schedules", name="ops.schedules_partial")
    async def list_partial(request: Request) -> Response:
        return await listing(request)

    @router.get("/partials/schedules/preview", name="ops.schedule_preview")
    async def preview_partial(request: Request) -> Response:
        """The next times as the expression is typed (a read: anyone signed in may ask)."""
        _, client = await room.client(request)
        q = request.query_params
        p = await preview(client, q.get("cron", ""), q.get("timezone", ""))
        return room.render(request, "partials/schedule_preview.html", {"preview": p})

    @router.get("/schedules/new", name="ops.schedule_new")
    async def new_page(request: Request) -> Response:
        _, client = await room.client(request)
        d = draft_of(None, request.query_params.get("template", ""))
        return await editor(request, client, d, None)

    @router.get("/schedules/{name}/edit", name="ops.schedule")
    async def edit_page(request: Request, name: str) -> Response:
        _, client = await room.client(request)
        s = await client.schedules.get(name)
        return await editor(request, client, draft_of(s), s)

    @router.post("/schedules/save", name="ops.schedule_save")
    async def save(request: Request) -> Response:
        _, client = await room.acting(request, admin=True, what="change schedules")
        d = draft_from_form(await request.form())
        name = d.body["name"]
        if name != d.existing and await _exists(client, name):
            d.add("name", f"name: a schedule named {name} exists already; edit it instead")
        if not d.problem_count:
            try:
                saved = await client.schedules.upsert(d.body)
            except (InvalidInput, NotFound) as e:
                d.add(slot_of(e), str(e))
            else:
                room.reads.forget()
                note = f"saved {saved.name}" + ("" if saved.enabled else " (paused)")
                target = request.url_for("ops.schedules").path + "?m=" + quote(note)
                return room.finish(request, RedirectResponse(target, 303))
        s = await client.schedules.get(name) if d.existing and d.existing == name else None
        return await editor(request, client, d, s, 422, failed=True)

    async def acted(request: Request, name: str, verb: str) -> Response:
        _, client = await room.acting(request, admin=True, what=f"{verb} schedules")
        if verb == "pause":
            await client.schedules.pause(name)
            done = f"paused {name}"
        elif verb == "resume":
            await client.schedules.resume(name)
            done = f"resumed {name}: it fires from its next time (missed times are not made up)"
        else:
            await client.schedules.delete(name)
            done = f"deleted {name}"
        room.reads.forget()
        if request.headers.get("hx-target") == "schedules":
            return await listing(request, done)
        # from the editor: back to the list, which says what was done
        target = request.url_for("ops.schedules").path + "?m=" + quote(done)
        return room.finish(request, Response(status_code=204, headers={"HX-Redirect": target}))

    @router.post("/schedules/{name}/pause", name="ops.schedule_pause")
    async def pause(request: Request, name: str) -> Response:
        return await acted(request, name, "pause")

    @router.post("/schedules/{name}/resume", name="ops.schedule_resume")
    async def resume(request: Request, name: str) -> Response:
        return await acted(request, name, "resume")

    @router.post("/schedules/{name}/delete", name="ops.schedule_delete")
    async def delete(request: Request, name: str) -> Response:
        return await acted(request, name, "delete")


async def _exists(client: AsyncClient, name: str) -> bool:
    try:
        await client.schedules.get(name)
    except NotFound:
        return False
    return True

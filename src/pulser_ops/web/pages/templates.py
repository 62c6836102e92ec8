"""Templates: the list (default lane, steps, attempts, last used), the editor (step DSL,
default lane, retry policy, lease, timeout, description, and a params schema built field by
field or edited as raw JSON Schema), live validation, a run form generated from the params
schema, YAML import and export (the format of ``pulser-ops templates apply``), delete.

Validation is the control plane's and the worker's own, not a copy: ``validate_template`` runs
the checks ``upsert_template`` makes, ``validate_params`` the checks enqueue makes, and the
steps go through ``steps.parse_steps``, the parser the worker runs them with. Only admins
may create, change or delete templates (the SQL refuses anyone else anyway); everyone else
sees the editor read-only, and operators may run templates.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import yaml
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ... import templates_file
from ...errors import InvalidInput, InvalidParams, NotFound, StepSpecError
from ...models import LANES, Template
from ...steps import parse_steps
from .. import schema_builder as sb

if TYPE_CHECKING:
    from ...client import AsyncClient
    from ..room import ControlRoom

#: The editor's fields, each with its error slot (``""``: the template as a whole).
SLOTS = (
    "name", "description", "default_lane", "steps", "params_schema", "max_attempts",
    "retry_backoff_seconds", "retry_backoff_max_seconds", "retry_jitter",
    "non_retryable_errors", "lease_seconds", "timeout_seconds", "",
)  # fmt: skip
INTEGERS = ("max_attempts", "lease_seconds", "timeout_seconds")
NUMBERS = ("retry_backoff_seconds", "retry_backoff_max_seconds", "retry_jitter")
#: Template files up to this size are imported.
IMPORT_LIMIT = 1 << 20
STEPS_EXAMPLE = """- kind: shell
  name: greet
  command: ["echo", "hello", "{{ params.name }}"]
"""


def slot_of(path: str) -> str:
    head = re.split(r"[.\[]", path, maxsplit=1)[0]
    return head if head in SLOTS else ""


@dataclass
class Draft:
    """The editor's contents: what was typed, as typed, and the template it makes."""

    values: dict[str, str] = field(default_factory=dict)
    rows: list[sb.FieldRow] = field(default_factory=list)
    allow_other: bool = True
    rest: dict[str, Any] = field(default_factory=dict)
    mode: str = "builder"
    raw_schema: str = '{\n  "type": "object"\n}'
    problems: dict[str, list[str]] = field(default_factory=dict)
    row_problems: list[sb.Problem] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)

    def add(self, slot: str, message: str) -> None:
        self.problems.setdefault(slot, []).append(message)

    @property
    def rest_json(self) -> str:
        return json.dumps(self.rest)

    @property
    def problem_count(self) -> int:
        return sum(len(v) for v in self.problems.values()) + len(self.row_problems)


def number_as_typed(text: str, kind: type) -> Any:
    """A number box's text as the number it is (``kind``: int or float), else as typed, for
    the control plane to name the problem."""
    try:
        value = kind(text)
    except ValueError:
        try:
            value = float(text)  # 1.5 for an integer: the SQL says so
        except ValueError:
            return text  # sent as typed: the control plane names the problem
    # "nan" and "inf" read as floats but are no JSON number
    return value if isinstance(value, int) or math.isfinite(value) else text


def _schema_text(schema: Any) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False)


def draft_of(t: Template | None) -> Draft:
    """The editor for an existing template (or a new one)."""
    if t is None:
        return Draft(
            values={"default_lane": "A", "max_attempts": "3", "lease_seconds": "60",
                    "retry_backoff_seconds": "5", "retry_backoff_max_seconds": "600",
                    "retry_jitter": "0.2", "steps": STEPS_EXAMPLE},
            rows=[sb.FieldRow(name="name", type="string", required=True)],
        )  # fmt: skip
    obj = templates_file.as_file_object(t)
    values = {k: "" if obj.get(k) is None else str(obj[k]) for k in SLOTS if k}
    values["steps"] = yaml.safe_dump(t.steps, sort_keys=False) if t.steps else ""
    values["non_retryable_errors"] = ", ".join(t.non_retryable_errors)
    for k in NUMBERS:
        values[k] = f"{float(obj[k]):g}"
    rows, allow_other, rest = sb.rows_from_schema(t.params_schema)
    return Draft(values, rows, allow_other, rest, "builder", _schema_text(t.params_schema))


def draft_from_form(form: Any, action: str = "") -> Draft:
    """The editor as posted, and the template body it makes (``action``: a builder action —
    add a row, remove one, switch between builder and raw JSON)."""
    d = Draft(values={k: str(form.get(k) or "") for k in SLOTS if k})
    d.mode = "raw" if str(form.get("schema_mode") or "builder") == "raw" else "builder"
    d.raw_schema = str(form.get("params_schema") or "")
    d.rows = sb.rows_from_form(form)
    d.allow_other = form.get("allow_other") is not None
    try:
        rest = json.loads(str(form.get("schema_rest") or "{}"))
        d.rest = rest if isinstance(rest, dict) else {}
    except ValueError:
        d.rest = {}
    if action == "add":
        d.rows.append(sb.FieldRow())
    elif action.startswith("remove:") and action[7:].isdigit():
        index = int(action[7:])
        d.rows = [r for i, r in enumerate(d.rows) if i != index]
    to = action[5:] if action.startswith("mode:") else None
    if to == "builder" and d.mode == "raw":
        d.mode = "builder"
        _rows_from_raw(d)
    elif to == "raw":
        d.mode = "raw"
    body: dict[str, Any] = {"name": d.values["name"].strip(),
                            "description": d.values["description"],
                            "default_lane": d.values["default_lane"] or "A"}  # fmt: skip
    steps_text = d.values["steps"]
    if steps_text.strip():
        try:
            steps = templates_file.parse_document(steps_text, "steps")
        except InvalidInput as e:
            d.add("steps", str(e))
        else:
            if isinstance(steps, list):
                body["steps"] = steps
            else:
                d.add("steps", "steps: expected a list of steps (YAML or JSON)")
    else:
        body["steps"] = []
    if d.mode == "builder" or to == "raw":
        schema, d.row_problems = sb.schema_from_rows(d.rows, d.allow_other, d.rest)
        d.raw_schema = _schema_text(schema)
        body["params_schema"] = schema
    else:
        try:
            body["params_schema"] = json.loads(d.raw_schema or "{}")
        except ValueError as e:
            d.add("params_schema", f"params_schema: not valid JSON ({e})")
    for k in INTEGERS + NUMBERS:
        text = d.values[k].strip()
        if text:
            body[k] = number_as_typed(text, int if k in INTEGERS else float)
        elif k == "timeout_seconds":
            body[k] = None
    body["non_retryable_errors"] = [
        x.strip() for x in re.split(r"[,\n]", d.values["non_retryable_errors"]) if x.strip()
    ]
    d.body = body
    return d


def _rows_from_raw(d: Draft) -> None:
    try:
        schema = json.loads(d.raw_schema or "{}")
    except ValueError as e:
        d.mode = "raw"
        d.add("params_schema", f"params_schema: not valid JSON ({e}); fix it to use the builder")
        return
    if not isinstance(schema, dict):
        d.mode = "raw"
        d.add("params_schema", "params_schema: expected a JSON object")
        return
    d.rows, d.allow_other, d.rest = sb.rows_from_schema(schema)


async def check(client: AsyncClient, d: Draft) -> Draft:
    """Every problem of the draft, each under its field: the control plane's template checks,
    then the steps through the worker's own parser."""
    for p in await client.templates.validate(d.body):
        d.add(slot_of(p.field), str(p))
    if "steps" in d.body and "steps" not in d.problems:
        try:
            parse_steps(d.body["steps"])
        except StepSpecError as e:
            for where, message in e.issues:
                d.add("steps", f"{where}: {message}")
    return d


def _errors_oob(room: ControlRoom, d: Draft) -> str:
    """Every field's error slot, swapped in out of band (empty slots clear old messages)."""
    tpl = room.templates.get_template("partials/field_errors.html")
    return str(tpl.render(slots=SLOTS, problems=d.problems, oob=True, count=d.problem_count))


def add(router: APIRouter, room: ControlRoom) -> None:

    def editor(request: Request, d: Draft, t: Template | None, extra: dict[str, Any],
               status: int = 200) -> Response:  # fmt: skip
        return room.render(
            request,
            "template.html",
            {"page": "ops.templates", "d": d, "t": t, "lanes": LANES, "types": sb.TYPES,
             "slots": SLOTS, **extra},
            status,
        )  # fmt: skip

    @router.get("/templates", name="ops.templates")
    async def list_page(request: Request) -> Response:
        _, client = await room.client(request)
        rows = await client.templates.summaries()
        return room.render(
            request,
            "templates.html",
            {"page": "ops.templates", "rows": rows, "message": request.query_params.get("m")},
        )

    @router.get("/templates/new", name="ops.template_new")
    async def new_page(request: Request) -> Response:
        await room.client(request)
        return editor(request, draft_of(None), None, {"versions": [], "run": None})

    @router.get("/templates/export.yaml", name="ops.templates_export")
    async def export_all(request: Request) -> Response:
        _, client = await room.client(request)
        return _yaml(templates_file.dump(await client.templates.list()), "templates.yaml")

    @router.post("/templates/import", name="ops.templates_import")
    async def import_file(request: Request) -> Response:
        _, client = await room.acting(request, admin=True, what="change templates")
        form = await request.form()
        text = str(form.get("yaml") or "")
        upload = form.get("file")
        if upload is not None and not isinstance(upload, str) and upload.filename:
            raw = await upload.read(IMPORT_LIMIT + 1)
            if len(raw) > IMPORT_LIMIT:
                raise InvalidInput(f"template file: larger than {IMPORT_LIMIT:,} bytes")
            text = raw.decode("utf-8", "replace")
            source = upload.filename
        else:
            source = "(pasted)"
        try:
            items = templates_file.load(text, source)
            applied = await client.templates.upsert_many(items)
        except InvalidInput as e:
            rows = await client.templates.summaries()
            return room.render(
                request,
                "templates.html",
                {"page": "ops.templates", "rows": rows, "import_error": str(e), "pasted": text},
                422,
            )
        room.reads.forget()
        names = ", ".join(t.name for t in applied)
        target = request.url_for("ops.templates").path + "?m=" + quote(f"applied {names}")
        return room.finish(request, RedirectResponse(target, 303))

    @router.post("/templates/validate", name="ops.template_validate")
    async def validate(request: Request) -> Response:
        _, client = await room.client(request)
        d = await check(client, draft_from_form(await request.form()))
        return room.finish(request, Response(_errors_oob(room, d), media_type="text/html"))

    @router.post("/templates/schema", name="ops.template_schema")
    async def schema_editor(request: Request) -> Response:
        who, _ = await room.client(request)
        form = await request.form()
        action = str(form.get("action") or "")
        d = draft_from_form(form, action)
        # An edit of a row: only what the rows make (redrawing the rows would reset the box
        # the operator is typing in). Add, remove, or a switch of mode: the whole editor.
        name = "partials/schema_derived.html" if action == "rows" else "partials/schema_editor.html"
        return room.render(request, name, {"d": d, "types": sb.TYPES, "editable": who.is_admin})

    @router.post("/templates/save", name="ops.template_save")
    async def save(request: Request) -> Response:
        _, client = await room.acting(request, admin=True, what="change templates")
        d = await check(client, draft_from_form(await request.form()))
        if d.problem_count:
            return editor(request, d, None, {"versions": [], "run": None, "failed": True}, 422)
        saved = await client.templates.upsert(d.body)
        room.reads.forget()
        target = request.url_for("ops.template", name=saved.name).path + "?saved=1"
        return room.finish(request, RedirectResponse(target, 303))

    @router.get("/templates/{name}", name="ops.template")
    async def template_page(request: Request, name: str) -> Response:
        _, client = await room.client(request)
        t = await client.templates.get(name)
        versions = await client.templates.versions(name, limit=20)
        return editor(
            request,
            draft_of(t),
            t,
            {"versions": versions, "saved": request.query_params.get("saved") == "1",
             "run": _run_context(t, None, {}, "")},
        )  # fmt: skip

    @router.get("/templates/{name}/export.yaml", name="ops.template_export")
    async def export_one(request: Request, name: str) -> Response:
        _, client = await room.client(request)
        return _yaml(templates_file.dump([await client.templates.get(name)]), f"{name}.yaml")

    @router.get("/templates/{name}/versions/{version}", name="ops.template_version")
    async def version_page(request: Request, name: str, version: str) -> Response:
        _, client = await room.client(request)
        if not version.isdigit():
            raise NotFound(f"template {name} has no version {version!r}")
        t = await client.templates.get_version(name, int(version))
        return _yaml(templates_file.dump([t]), f"{name}-v{version}.yaml", inline=True)

    @router.post("/templates/{name}/delete", name="ops.template_delete")
    async def delete(request: Request, name: str) -> Response:
        _, client = await room.acting(request, admin=True, what="delete templates")
        await client.templates.delete(name)
        room.reads.forget()
        target = request.url_for("ops.templates").path + "?m=" + quote(f"deleted {name}")
        return room.finish(request, Response(status_code=204, headers={"HX-Redirect": target}))

    @router.post("/templates/{name}/run", name="ops.template_run")
    async def run(request: Request, name: str) -> Response:
        _, client = await room.acting(request)
        t = await client.templates.get(name)
        form = await request.form()
        params, problems = sb.params_from_form(t.params_schema, form)
        lane = str(form.get("lane") or "") or None
        priority = str(form.get("priority") or "0").strip() or "0"
        if not problems:
            for p in await client.templates.validate_params(name, params):
                problems.setdefault(p.field.split(".", 1)[0], p.message)
        if not re.fullmatch(r"-?\d+", priority):
            problems["priority"] = "expected an integer"
        if not problems:
            try:
                fresh = await client.runs.create(
                    name, params, lane=lane, priority=int(priority)
                )
            except InvalidParams as e:  # changed under us: report it where it belongs
                problems[(e.field or "").removeprefix("params.").split(".", 1)[0]] = str(e)
            except InvalidInput as e:
                problems[""] = str(e)
            else:
                room.reads.forget()
                target = request.url_for("ops.run", run_id=str(fresh.id)).path
                return room.finish(
                    request, Response(status_code=204, headers={"HX-Redirect": target})
                )
        # htmx swaps only 2xx answers: the form with its errors goes back as a 200 to htmx
        # (422 to anything else).
        return room.render(
            request,
            "partials/run_form.html",
            {"t": t, "run": _run_context(t, form, problems, lane or ""), "lanes": LANES},
            200 if request.headers.get("hx-request") else 422,
        )


def _run_context(t: Template, form: Any, problems: dict[str, str], lane: str) -> dict[str, Any]:
    props = t.params_schema.get("properties")
    return {
        "fields": sb.run_fields(t.params_schema, form),
        "free_form": not props,
        "params_text": str(form.get("params") or "") if form is not None else "",
        "priority": str(form.get("priority") or "0") if form is not None else "0",
        "lane": lane or t.default_lane,
        "problems": problems,
    }


def _yaml(text: str, filename: str, inline: bool = False) -> Response:
    disposition = "inline" if inline else f'attachment; filename="{filename}"'
    return Response(
        text,
        media_type="text/plain; charset=utf-8" if inline else "application/yaml",
        headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
    )


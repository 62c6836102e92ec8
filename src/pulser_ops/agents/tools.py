"""What an AI agent may do with the control plane, as MCP tools.

- ``list_templates``: every template with its params schema;
- ``run_<template>``: one tool per template, whose input schema IS the template's params
  schema: calling it enqueues a run on the template's default lane;
- ``enqueue_run``: any template, with lane, priority, session and idempotency key;
- ``get_run``: a run with its steps, artifacts and last events;
- ``wait_for_run``: until the run ends, or a timeout (then it says it timed out);
- ``cancel_run``, ``list_runs`` (filters: status, lanes, template, session, text);
- ``expedite_run``: a queued run that waits (run_after, a retry's backoff) claimable now (not
  ``run_now``: ``run_<name>`` are the templates' tools);
- ``list_schedules``: the recurring runs, with their next and last times;
- ``read_artifact``: text inline, images as MCP images, other bytes as base64.

Every tool goes through the SDK client the server was started with: the control plane checks
each call as for any caller, so an operator's JWT gives an operator's rights and nothing more.
A refusal is a tool error with the SDK's stable error code, never a crash of the server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import mcp_types as types

from ..client import AsyncClient
from ..errors import InvalidInput, PulserOpsError
from ..models import LANES, RunFilter, RunStatus

#: Tools a template becomes: run_<name>.
RUN_PREFIX = "run_"
#: How long wait_for_run may wait, at most (seconds).
MAX_WAIT_SECONDS = 600
#: Bytes read_artifact returns at most.
MAX_ARTIFACT_BYTES = 1 << 20
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})

_RUN_ID = {"type": "string", "format": "uuid", "description": "the run's id"}
STATIC_TOOLS: dict[str, tuple[str, dict[str, Any]]] = {
    "list_templates": (
        "The run templates: name, description, default lane, steps and params schema. Each is "
        "also a tool run_<name> taking its params.",
        {"type": "object", "properties": {}, "additionalProperties": False},
    ),
    "enqueue_run": (
        "Enqueue a run of a template. params are checked against the template's params schema "
        "by the control plane; the answer is the queued run (use wait_for_run to see it end).",
        {"type": "object", "required": ["template"], "additionalProperties": False,
         "properties": {
             "template": {"type": "string"},
             "params": {"type": "object", "description": "the template's params"},
             "lane": {"type": "string", "enum": list(LANES),
                      "description": "default: the template's"},
             "priority": {"type": "integer", "minimum": -100, "maximum": 100, "default": 0},
             "session_id": {"type": "string", "format": "uuid",
                            "description": "a session of yours that groups runs"},
             "idempotency_key": {"type": "string",
                                 "description": "the same key returns the same run"}}},
    ),
    "get_run": (
        "A run: its status, params, result or error, steps, artifacts and last events.",
        {"type": "object", "required": ["run_id"], "additionalProperties": False,
         "properties": {"run_id": _RUN_ID,
                        "events": {"type": "integer", "minimum": 0, "maximum": 200, "default": 20,
                                   "description": "how many of its last events"}}},
    ),
    "wait_for_run": (
        "Wait until a run ends (succeeded, failed or cancelled) or the timeout passes; returns "
        "the run and whether it timed out.",
        {"type": "object", "required": ["run_id"], "additionalProperties": False,
         "properties": {"run_id": _RUN_ID,
                        "timeout_seconds": {"type": "number", "minimum": 0,
                                            "maximum": MAX_WAIT_SECONDS, "default": 60}}},
    ),
    "cancel_run": (
        "Cancel a run: a queued run ends at once, a running one when its worker next "
        "heartbeats.",
        {"type": "object", "required": ["run_id"], "additionalProperties": False,
         "properties": {"run_id": _RUN_ID, "reason": {"type": "string"}}},
    ),
    "expedite_run": (
        "Make a queued run that waits (enqueued with run_after, or a retry waiting out its "
        "backoff) claimable now; a run already due is returned as it is.",
        {"type": "object", "required": ["run_id"], "additionalProperties": False,
         "properties": {"run_id": _RUN_ID}},
    ),
    "list_schedules": (
        "The schedules (recurring runs): template, params, cron expression and time zone, "
        "enabled or paused, next due time, last run and last error.",
        {"type": "object", "properties": {}, "additionalProperties": False},
    ),
    "list_runs": (
        "Runs, newest first, filtered by status, lanes, template, session or text in their "
        "params or errors.",
        {"type": "object", "additionalProperties": False, "properties": {
            "status": {"type": "array", "items": {"type": "string",
                                                  "enum": [s.value for s in RunStatus]}},
            "lanes": {"type": "array", "items": {"type": "string", "enum": list(LANES)}},
            "template": {"type": "string"},
            "session_id": {"type": "string", "format": "uuid"},
            "q": {"type": "string", "description": "text in params or errors, or a run id"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20}}},
    ),
    "read_artifact": (
        "Read an artifact of a run: text as text, images as images, other bytes as base64; at "
        "most max_bytes (the answer says when it was cut).",
        {"type": "object", "required": ["run_id", "name"], "additionalProperties": False,
         "properties": {"run_id": _RUN_ID, "name": {"type": "string"},
                        "attempt": {"type": "integer", "minimum": 0,
                                    "description": "default: the latest attempt that saved it"},
                        "max_bytes": {"type": "integer", "minimum": 1,
                                      "maximum": MAX_ARTIFACT_BYTES, "default": 65536}}},
    ),
}  # fmt: skip


def _json(value: Any) -> Any:
    """Models and values as plain JSON (UUIDs and times as strings)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def _result(data: Mapping[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(data, indent=2))],
        structured_content=dict(data),
    )


def _error(code: str, message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=f"{code}: {message}")],
        structured_content={"error": code, "message": message},
        is_error=True,
    )


def _uuid(args: Mapping[str, Any], key: str) -> UUID:
    try:
        return UUID(str(args.get(key)))
    except ValueError:
        raise InvalidInput(f"{key}: not a run id ({args.get(key)!r})") from None


@dataclass
class Toolbox:
    """The tools over one client (the credentials the server was started with)."""

    client: AsyncClient

    async def list_tools(self) -> list[types.Tool]:
        tools = [
            types.Tool(name=name, description=text, input_schema=schema)
            for name, (text, schema) in STATIC_TOOLS.items()
        ]
        for t in await self.client.templates.list():
            schema = {"type": "object", **t.params_schema}
            what = t.description or f"the {t.name} template"
            tools.append(
                types.Tool(
                    name=RUN_PREFIX + t.name,
                    title=f"Run {t.name}",
                    description=f"Enqueue a run of {t.name}: {what} (lane {t.default_lane}; "
                    "its arguments are the template's params). Returns the queued run.",
                    input_schema=schema,
                )
            )
        return tools

    async def call(self, name: str, arguments: Mapping[str, Any] | None) -> types.CallToolResult:
        args = dict(arguments or {})
        handler: Callable[[dict[str, Any]], Awaitable[types.CallToolResult]] | None = getattr(
            self, f"_tool_{name}", None
        ) if name in STATIC_TOOLS else None
        try:
            if handler is not None:
                return await handler(args)
            if name.startswith(RUN_PREFIX):
                return await self._enqueue(name[len(RUN_PREFIX) :], args, {})
            return _error("unknown_tool", f"no tool {name!r}; list the tools")
        except PulserOpsError as e:
            return _error(e.code, str(e))
        except (TypeError, ValueError) as e:  # an argument of the wrong type (int("high"))
            return _error(InvalidInput.code, f"{name}: {e}")

    # --- the tools ------------------------------------------------------------------------

    async def _tool_list_templates(self, args: dict[str, Any]) -> types.CallToolResult:
        templates = await self.client.templates.list()
        return _result({"templates": [
            {"name": t.name, "description": t.description, "default_lane": t.default_lane,
             "version": t.version, "params_schema": t.params_schema, "tool": RUN_PREFIX + t.name,
             "steps": [s.get("kind") for s in t.steps]}
            for t in templates]})  # fmt: skip

    async def _enqueue(
        self, template: str, params: Mapping[str, Any], options: Mapping[str, Any]
    ) -> types.CallToolResult:
        run = await self.client.runs.create(
            template,
            params,
            lane=options.get("lane"),
            priority=int(options.get("priority") or 0),
            session_id=options.get("session_id"),
            idempotency_key=options.get("idempotency_key"),
        )
        return _result({"run": _json(run)})

    async def _tool_enqueue_run(self, args: dict[str, Any]) -> types.CallToolResult:
        params = args.get("params") or {}
        if not isinstance(params, dict):
            raise InvalidInput("params: expected an object")
        return await self._enqueue(str(args.get("template") or ""), params, args)

    async def _tool_get_run(self, args: dict[str, Any]) -> types.CallToolResult:
        run_id = _uuid(args, "run_id")
        n = int(args.get("events", 20))
        run = await self.client.runs.get(run_id)
        steps = await self.client.runs.steps(run_id)
        artifacts = await self.client.artifacts.list(run_id)
        events = await self.client.events.last(run_id, limit=n) if n > 0 else []
        return _result({
            "run": _json(run), "steps": _json(steps),
            "artifacts": [{"name": a.name, "attempt": a.attempt, "content_type": a.content_type,
                           "size_bytes": a.size_bytes} for a in artifacts],
            "events": [{"seq": e.seq, "at": e.at.isoformat(), "kind": e.kind, "level": e.level,
                        "message": e.message} for e in events],
        })  # fmt: skip

    async def _tool_wait_for_run(self, args: dict[str, Any]) -> types.CallToolResult:
        """Polls (NOTIFY is only a hint; polling alone is always correct), quickly at first."""
        run_id = _uuid(args, "run_id")
        timeout = min(max(float(args.get("timeout_seconds", 60)), 0.0), MAX_WAIT_SECONDS)
        deadline = time.monotonic() + timeout
        pause = 0.2
        while True:
            run = await self.client.runs.get(run_id)
            left = deadline - time.monotonic()
            if run.is_terminal or left <= 0:
                return _result({"run": _json(run), "ended": run.is_terminal,
                                "timed_out": not run.is_terminal})  # fmt: skip
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 1.5, 2.0)

    async def _tool_cancel_run(self, args: dict[str, Any]) -> types.CallToolResult:
        run = await self.client.runs.cancel(_uuid(args, "run_id"), reason=args.get("reason"))
        return _result({"run": _json(run)})

    async def _tool_expedite_run(self, args: dict[str, Any]) -> types.CallToolResult:
        run = await self.client.runs.run_now(_uuid(args, "run_id"))
        return _result({"run": _json(run)})

    async def _tool_list_schedules(self, args: dict[str, Any]) -> types.CallToolResult:
        return _result({"schedules": _json(await self.client.schedules.list())})

    async def _tool_list_runs(self, args: dict[str, Any]) -> types.CallToolResult:
        template = args.get("template")
        try:
            f = RunFilter(
                status=tuple(args.get("status") or ()),
                lanes=tuple(args.get("lanes") or ()),
                templates=(template,) if template else (),
                session_id=args.get("session_id"),
                q=args.get("q"),
            )
        except ValueError as e:
            raise InvalidInput(f"filter: {e}") from None
        limit = min(max(int(args.get("limit", 20)), 1), 200)
        runs = await self.client.runs.search(f, limit=limit)
        return _result({"runs": _json(runs)})

    async def _tool_read_artifact(self, args: dict[str, Any]) -> types.CallToolResult:
        run_id = _uuid(args, "run_id")
        attempt = None if args.get("attempt") is None else int(args["attempt"])
        a = await self.client.artifacts.get(run_id, str(args.get("name") or ""), attempt=attempt)
        limit = min(max(int(args.get("max_bytes", 65536)), 1), MAX_ARTIFACT_BYTES)
        data = await self.client.artifacts.head(a, limit)
        meta = {"name": a.name, "attempt": a.attempt, "content_type": a.content_type,
                "size_bytes": a.size_bytes, "returned_bytes": len(data),
                "truncated": len(data) < a.size_bytes}  # fmt: skip
        ctype = a.content_type.split(";", 1)[0].strip().lower()
        if ctype in IMAGE_TYPES and len(data) == a.size_bytes:
            image = types.ImageContent(
                type="image", data=base64.b64encode(data).decode(), mime_type=ctype
            )
            return types.CallToolResult(content=[image], structured_content=meta)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return _result({**meta, "base64": base64.b64encode(data).decode()})
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content={**meta, "text": text},
        )

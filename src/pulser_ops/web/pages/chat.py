"""Chat: a session as a conversation in which an operator starts and steers runs.

The tab lists the operator's sessions (an admin's: everyone's); a session opens as a message
stream with a message box that takes commands (``commands.py``: run, cancel, retry, status,
logs, templates, help), completing template names and their params as you type. Each command
and the room's answer are stored together (``sessions.post``: the ``session_messages`` table,
RLS: your own sessions), so reopening the session, or opening it in another browser, shows the
same conversation. Every run the session started (``runs.session_id``) shows as a live card —
status, heartbeat, last log line, artifacts — and its end appears in the stream when it ends.

A command runs through the SDK with the operator's own client, so the control plane checks it
as it would any call; a command that cannot run gets an answer in the stream and changes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Form, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ...errors import AlreadyTerminal, InvalidInput, NotFound, PulserOpsError
from ...models import MessageIn, Run, RunFilter, SessionMessage, SessionRun
from .. import commands as cmds
from ..ids import uuid_or_404
from .artifacts import Links, attempt_of

if TYPE_CHECKING:
    from ...client import AsyncClient
    from ..room import ControlRoom

#: Messages and runs a session shows (the newest).
SHOWN_MESSAGES = 300
SHOWN_RUNS = 100


@dataclass(frozen=True)
class Item:
    """One entry of the stream: a message, a run's live card, or a run's end."""

    at: datetime
    kind: str  # message | card | end
    message: SessionMessage | None = None
    card: SessionRun | None = None
    index: int = 0  # the run's #n in the session


def stream_items(messages: list[SessionMessage], runs: list[SessionRun]) -> list[Item]:
    """Messages in order; each run's card right after the message that started it (else where
    the run was created); each finished run's end where it finished."""
    by_run = {c.run.id: (i + 1, c) for i, c in enumerate(runs)}
    items: list[Item] = []
    carded: set[UUID] = set()
    for m in messages:
        items.append(Item(m.at, "message", message=m))
        if m.run_id in by_run and m.run_id not in carded:
            index, card = by_run[m.run_id]
            items.append(Item(m.at, "card", card=card, index=index))
            carded.add(m.run_id)
    for run_id, (index, card) in by_run.items():
        if run_id not in carded:
            items.append(Item(card.run.created_at, "card", card=card, index=index))
        if card.run.is_terminal and card.run.finished_at is not None:
            items.append(Item(card.run.finished_at, "end", card=card, index=index))
    order = {"message": 0, "card": 1, "end": 2}
    return sorted(items, key=lambda x: (x.at, order[x.kind]))


class Conversation:
    """One session's conversation, read and driven with the operator's own client."""

    def __init__(self, client: AsyncClient, session_id: UUID) -> None:
        self.client = client
        self.id = session_id

    async def runs(self) -> list[SessionRun]:
        return await self.client.sessions.runs(self.id, limit=SHOWN_RUNS)

    async def templates(self) -> dict[str, dict[str, Any]]:
        return {t.name: t.params_schema for t in await self.client.templates.list()}

    async def resolve(self, ref: str) -> Run:
        """``#n``, a run id, or the first characters of one (this session's runs first, then
        the newest runs the caller can see)."""
        runs = [c.run for c in await self.runs()]
        if ref.startswith("#"):
            n = int(ref[1:])
            if not 1 <= n <= len(runs):
                raise cmds.CommandError(f"this session has no run {ref} (it has {len(runs)})")
            return runs[n - 1]
        try:
            return await self.client.runs.get(UUID(ref))
        except ValueError:
            pass
        found = [r for r in runs if str(r.id).startswith(ref)]
        if not found:
            found = [r for r in await self.client.runs.search(RunFilter(), limit=500)
                     if str(r.id).startswith(ref)]  # fmt: skip
        if not found:
            raise cmds.CommandError(f"no run starts with {ref}")
        if len({r.id for r in found}) > 1:
            ids = ", ".join(str(r.id)[:12] for r in found[:5])
            raise cmds.CommandError(f"{ref} is ambiguous: {ids}; type more of it")
        return found[0]

    async def answer(self, command: cmds.Command) -> list[MessageIn]:
        """Carry out a command; the reply (or replies) for the stream."""
        c = self.client
        if command.name == "help":
            text = cmds.help_text(command.topic, await self.templates())
            return [MessageIn(kind="reply", body=text)]
        if command.name == "templates":
            schemas = await self.templates()
            usages = [cmds.template_usage(n, s) for n, s in sorted(schemas.items())]
            return [MessageIn(kind="reply", body="\n".join(usages) or "no templates yet")]
        if command.name == "run":
            assert command.template is not None
            schemas = await self.templates()
            if command.template not in schemas:
                known = ", ".join(sorted(schemas)) or "none yet"
                raise cmds.CommandError(
                    f"unknown template {command.template!r} (templates: {known})"
                )
            try:
                run = await c.runs.create(
                    command.template, command.params, lane=command.lane,
                    priority=command.priority or 0, session_id=self.id,
                )  # fmt: skip
            except InvalidInput as e:
                raise cmds.CommandError(
                    str(e), cmds.template_usage(command.template, schemas[command.template])
                ) from None
            return [MessageIn(
                kind="reply", run_id=run.id,
                body=f"started {command.template} as run {str(run.id)[:8]} on lane {run.lane}",
                data={"params": run.params},
            )]  # fmt: skip
        assert command.run is not None or command.name == "status"
        if command.name == "status" and command.run is None:
            return [MessageIn(kind="reply", body=await self._status())]
        assert command.run is not None
        run = await self.resolve(command.run)
        short = str(run.id)[:8]
        if command.name == "status":
            where = f" on {run.worker_id}" if run.worker_id else ""
            body = (f"run {short} ({run.template}) is {run.status.value}{where}, "
                    f"attempt {run.attempt} of {run.max_attempts}")  # fmt: skip
            if run.error:
                body += f"\nerror: {run.error}"
            return [MessageIn(kind="reply", body=body, run_id=run.id)]
        if command.name == "cancel":
            try:
                done = await c.runs.cancel(run.id, reason=command.reason or "cancelled from chat")
            except AlreadyTerminal as e:
                raise cmds.CommandError(str(e)) from None
            said = "cancelled" if done.is_terminal else "cancel requested (its worker stops it)"
            return [MessageIn(kind="reply", body=f"run {short}: {said}", run_id=run.id)]
        if command.name == "retry":
            fresh = await c.runs.rerun(run.id, lane=command.lane)
            said = f"re-ran {short} as run {str(fresh.id)[:8]} on lane {fresh.lane}"
            return [MessageIn(kind="reply", run_id=fresh.id, body=said)]
        # logs: the tail of the run's log (lifecycle events named by their kind)
        tail = await c.events.last(run.id, limit=command.lines)
        lines = [f"{e.at:%H:%M:%S} " + (e.message if e.kind == "log" else f"[{e.kind}] {e.message}")
                 for e in tail]  # fmt: skip
        body = "\n".join(lines) if lines else f"run {short} has no events yet"
        return [MessageIn(kind="reply", body=body, run_id=run.id, data={"logs": True})]

    async def _status(self) -> str:
        snap = await self.client.lanes.board()
        lanes = "  ".join(
            f"{lane.lane}: {lane.queued} queued, {lane.running} running"
            + (" (paused)" if lane.paused else "")
            for lane in snap.lanes
        )
        active = [c.run for c in await self.runs() if not c.run.is_terminal]
        mine = "\n".join(
            f"  {str(r.id)[:8]} {r.template} {r.status.value} (lane {r.lane})" for r in active
        )
        return f"lanes  {lanes}\n" + (f"this session's runs going:\n{mine}" if mine
                                       else "no runs of this session are going")  # fmt: skip

    async def say(self, text: str) -> list[SessionMessage]:
        """A command and its answer, stored together (a bad command: with the reason)."""
        replies: list[MessageIn]
        try:
            replies = await self.answer(cmds.parse(text))
        except cmds.CommandError as e:
            replies = [MessageIn(kind="error", body=str(e))]
        except PulserOpsError as e:
            # refused by the control plane (not yours, not found, invalid): said, not raised;
            # a session that is not the caller's is refused by the post below all the same
            replies = [MessageIn(kind="error", body=f"{e.code}: {e}")]
        command = MessageIn(kind="command", body=text[:4000])
        return await self.client.sessions.post(self.id, [command, *replies])


def add(router: APIRouter, room: ControlRoom) -> None:
    async def stream_context(request: Request, client: AsyncClient, sid: UUID) -> dict[str, Any]:
        key = (await room.principal(request)).client_key
        messages = await room.reads.get(
            (key, "messages", sid), lambda: client.sessions.messages(sid, limit=SHOWN_MESSAGES)
        )
        runs = await room.reads.get(
            (key, "session-runs", sid), lambda: client.sessions.runs(sid, limit=SHOWN_RUNS)
        )
        return {
            "items": stream_items(messages, runs), "sid": sid, "links": Links(request),
            "attempt_of": attempt_of,
        }  # fmt: skip

    @router.get("/chat", name="ops.chat")
    async def chat_page(request: Request) -> Response:
        _, client = await room.client(request)
        sessions = await client.sessions.summaries()
        return room.render(request, "chat.html", {"page": "ops.chat", "sessions": sessions,
                                                  "current": None})  # fmt: skip

    @router.get("/partials/chat-sessions", name="ops.chat_sessions")
    async def sessions_partial(request: Request) -> Response:
        _, client = await room.client(request)
        sessions = await client.sessions.summaries()
        raw = request.query_params.get("current")
        current = next((s for s in sessions if raw and str(s.id) == raw), None)
        return room.render(
            request, "partials/chat_sessions.html", {"sessions": sessions, "current": current}
        )

    @router.post("/chat/sessions", name="ops.chat_new")
    async def new_session(request: Request, title: Annotated[str, Form()] = "") -> Response:
        _, client = await room.acting(request)
        s = await client.sessions.create(title.strip()[:200] or None, {"source": "chat"})
        target = request.url_for("ops.chat_session", session_id=str(s.id)).path
        return room.finish(request, RedirectResponse(target, 303))

    @router.get("/chat/{session_id}", name="ops.chat_session")
    async def session_page(request: Request, session_id: str) -> Response:
        _, client = await room.client(request)
        sid = uuid_or_404(session_id, "session")
        sessions = await client.sessions.summaries()
        current = next((s for s in sessions if s.id == sid), None)
        if current is None:
            raise NotFound(f"no session {session_id}")
        ctx = await stream_context(request, client, sid)
        return room.render(
            request,
            "chat.html",
            {"page": "ops.chat", "sessions": sessions, "current": current, **ctx},
        )

    @router.get("/partials/chat/{session_id}", name="ops.chat_stream")
    async def stream_partial(request: Request, session_id: str) -> Response:
        _, client = await room.client(request)
        ctx = await stream_context(request, client, uuid_or_404(session_id, "session"))
        return room.render(request, "partials/chat_stream.html", ctx)

    @router.post("/chat/{session_id}/send", name="ops.chat_send")
    async def send(request: Request, session_id: str,
                   text: Annotated[str, Form()] = "") -> Response:  # fmt: skip
        _, client = await room.acting(request)
        sid = uuid_or_404(session_id, "session")
        if not text.strip():
            raise InvalidInput("type a command; `help` lists them")
        await Conversation(client, sid).say(text.strip())
        room.reads.forget()
        room.broadcaster.mark("session_messages")  # other tabs on this server refresh now
        ctx = await stream_context(request, client, sid)
        return room.render(request, "partials/chat_stream.html", ctx)

    @router.get("/chat/{session_id}/complete", name="ops.chat_complete")
    async def complete(request: Request, session_id: str, text: str = "") -> Response:
        _, client = await room.client(request)
        s = Conversation(client, uuid_or_404(session_id, "session"))
        key = (await room.principal(request)).client_key
        schemas = await room.reads.get((key, "template-schemas"), s.templates)
        runs = [(str(c.run.id)[:8], f"{c.run.template} · {c.run.status.value}")
                for c in await s.runs()]  # fmt: skip
        found = cmds.complete(text, schemas, runs)
        return JSONResponse(
            [{"text": x.text, "label": x.label, "detail": x.detail} for x in found],
            headers={"Cache-Control": "no-store"},
        )


__all__ = ["Conversation", "Item", "add", "stream_items"]

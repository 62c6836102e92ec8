"""Python handlers: a registry of named functions and the context they receive."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulser_ops.errors import StepCancelled, UnknownHandler
from pulser_ops.models import EventLevel
from pulser_ops.steps.context import ArtifactKind, StepContext

Handler = Callable[["HandlerContext"], Any]


class StepLogger:
    """Logger handed to handlers; each call becomes one ``log`` run event."""

    def __init__(self, ctx: StepContext, step_name: str) -> None:
        self._ctx = ctx
        self._step = step_name

    def log(self, level: EventLevel, message: str, **data: Any) -> None:
        self._ctx.emit("log", level, message, {"step": self._step, "stream": "handler", **data})

    def debug(self, message: str, **data: Any) -> None:
        self.log("debug", message, **data)

    def info(self, message: str, **data: Any) -> None:
        self.log("info", message, **data)

    def warning(self, message: str, **data: Any) -> None:
        self.log("warn", message, **data)

    def error(self, message: str, **data: Any) -> None:
        self.log("error", message, **data)


@dataclass
class HandlerContext:
    """What a python handler sees.

    ``cancel_token`` is set when the run is cancelled *or* the step times out; a
    long-running handler should check :meth:`cancelled` (or call
    :meth:`raise_if_cancelled`) regularly, because threads cannot be killed: a
    handler that ignores it is abandoned after ``kill_grace_seconds``. An ``async def``
    handler is also cancelled (``CancelledError`` at its next ``await``); it must not block the
    event loop it runs on: no ``sleep``, use ``await asyncio.sleep`` and
    :meth:`save_artifact_async`.
    """

    step_ctx: StepContext
    step_name: str
    args: Mapping[str, Any]
    cancel_token: threading.Event
    log: StepLogger
    saved_artifacts: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def params(self) -> Mapping[str, Any]:
        return self.step_ctx.params

    @property
    def run_id(self) -> str:
        return self.step_ctx.run_id

    @property
    def attempt(self) -> int:
        return self.step_ctx.attempt

    @property
    def workdir(self) -> Path:
        return self.step_ctx.workdir

    def cancelled(self) -> bool:
        return self.cancel_token.is_set()

    def raise_if_cancelled(self) -> None:
        if self.cancel_token.is_set():
            raise StepCancelled(f"handler of step {self.step_name!r} stopped on cancel")

    def sleep(self, seconds: float) -> None:
        """Sleep that wakes up (and raises :class:`StepCancelled`) on cancel."""
        if self.cancel_token.wait(seconds):
            self.raise_if_cancelled()

    def save_artifact(
        self,
        name: str,
        data: str | bytes,
        kind: ArtifactKind = "text",
        content_type: str | None = None,
    ) -> None:
        self.step_ctx.save_artifact(name, data, kind, content_type)
        with self._lock:
            self.saved_artifacts.append(name)

    async def save_artifact_async(
        self,
        name: str,
        data: str | bytes,
        kind: ArtifactKind = "text",
        content_type: str | None = None,
    ) -> None:
        """``save_artifact`` for an ``async def`` handler: it does not block the worker's event
        loop (``save_artifact`` waits for the database)."""
        from pulser_ops.steps.async_runner import save_artifact

        await save_artifact(self.step_ctx, name, data, kind, content_type)
        with self._lock:
            self.saved_artifacts.append(name)


class HandlerRegistry:
    """Name → handler map; the worker builds one at start-up and passes it to run_step.

    >>> registry = HandlerRegistry()
    >>> @registry.register("say_hello")
    ... def say_hello(ctx: HandlerContext) -> dict[str, str]:
    ...     return {"hello": ctx.params.get("who", "world")}
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str) -> Callable[[Handler], Handler]:
        def decorator(fn: Handler) -> Handler:
            self.add(name, fn)
            return fn

        return decorator

    def add(self, name: str, fn: Handler) -> None:
        if name in self._handlers:
            raise ValueError(f"handler {name!r} is already registered")
        self._handlers[name] = fn

    def get(self, name: str) -> Handler:
        try:
            return self._handlers[name]
        except KeyError:
            known = ", ".join(sorted(self._handlers)) or "none"
            raise UnknownHandler(
                f"no python handler named {name!r} on this worker (registered: {known})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

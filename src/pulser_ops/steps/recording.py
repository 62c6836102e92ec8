"""An in-memory :class:`StepContext` for tests and local dry runs of templates."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulser_ops.models import EventLevel
from pulser_ops.steps.context import ArtifactKind


@dataclass(frozen=True)
class RecordedEvent:
    """One ``emit`` call, as the worker would append it to ``run_events``."""

    kind: str
    level: EventLevel
    message: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class RecordedArtifact:
    """One ``save_artifact`` call."""

    name: str
    data: str | bytes
    kind: ArtifactKind
    content_type: str | None

    @property
    def text(self) -> str:
        """The artifact as text (bytes decoded as UTF-8 with replacement)."""
        if isinstance(self.data, bytes):
            return self.data.decode("utf-8", errors="replace")
        return self.data


@dataclass
class RecordingContext:
    """Keeps every event and artifact in lists; thread-safe like the real one must be.

    ``on_emit`` lets a test react to an event while the step is still running (e.g.
    cancel the run once a given line has been streamed).
    """

    params: Mapping[str, Any] = field(default_factory=dict)
    run_id: str = "00000000-0000-0000-0000-000000000000"
    attempt: int = 1
    cancel_token: threading.Event = field(default_factory=threading.Event)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pulser-step-")))
    on_emit: Callable[[RecordedEvent], None] | None = None
    events: list[RecordedEvent] = field(default_factory=list)
    artifacts: dict[str, RecordedArtifact] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def emit(
        self,
        kind: str,
        level: EventLevel,
        message: str,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        event = RecordedEvent(kind, level, message, dict(data or {}))
        with self._lock:
            self.events.append(event)
        if self.on_emit is not None:
            self.on_emit(event)

    def save_artifact(
        self,
        name: str,
        data: str | bytes,
        kind: ArtifactKind = "text",
        content_type: str | None = None,
    ) -> None:
        with self._lock:
            self.artifacts[name] = RecordedArtifact(name, data, kind, content_type)

    def log_events(self, stream: str | None = None) -> list[RecordedEvent]:
        """The ``log`` events, optionally only those of one stream (stdout/stderr)."""
        with self._lock:
            events = list(self.events)
        return [
            e
            for e in events
            if e.kind == "log" and (stream is None or e.data.get("stream") == stream)
        ]

    def log_lines(self, stream: str | None = None) -> list[str]:
        """All streamed log lines in order, flattened out of their batches."""
        return [line for e in self.log_events(stream) for line in e.message.split("\n")]

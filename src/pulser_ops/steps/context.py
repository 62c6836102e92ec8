"""The interface between a step executor and the worker loop that calls it.

The worker implements :class:`StepContext` (it turns ``emit`` into batched
``append_run_events`` calls and ``save_artifact`` into ``put_artifact`` / Storage
uploads). Executors only depend on this protocol, so they can be tested without a
database and reused by any worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pulser_ops.models import EventLevel

ArtifactKind = Literal["text", "json", "markdown", "file", "log"]


@runtime_checkable
class CancelToken(Protocol):
    """What executors need from a cancel signal; ``threading.Event`` satisfies it."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class StepContext(Protocol):
    """Everything a step may touch about its run.

    ``emit`` and ``save_artifact`` MUST be thread-safe: python handlers run in their own
    thread and call them from there, while process steps call them from the thread that
    called :func:`run_step`. Both should be cheap (buffer, don't block on the network),
    since they are called while the step's process is running.
    """

    @property
    def params(self) -> Mapping[str, Any]: ...

    @property
    def run_id(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def cancel_token(self) -> CancelToken: ...

    @property
    def workdir(self) -> Path: ...

    def emit(
        self,
        kind: str,
        level: EventLevel,
        message: str,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a run event (kind ``log`` for output batches, ``step`` for lifecycle)."""

    def save_artifact(
        self,
        name: str,
        data: str | bytes,
        kind: ArtifactKind = "text",
        content_type: str | None = None,
    ) -> None:
        """Store an artifact under ``name`` (relative path, unique per run)."""

"""The worker's implementation of ``steps.StepContext`` for one claimed run.

Events go to the shared :class:`EventSink` (buffered, never a round trip per line);
artifacts are written straight away with ``client.artifacts.put`` (from a step's thread) or on
the event loop's own client (``save_artifact_async``, from steps that run on the loop) because
they are few
(one or two per step) and a partial artifact saved while a run is being cancelled must be
in the database before the run is marked cancelled.

Text the database cannot hold (a NUL, a lone surrogate) is saved as bytes, a file: an
artifact keeps what the step produced, where an event would show it marked (``textsafe``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..client import AsyncClient, Client
from ..errors import PulserOpsError
from ..models import Run
from ..steps import ArtifactKind, CancelToken, EventLevel
from .events import EventSink
from .held import HeldRun
from .textsafe import storable

log = logging.getLogger("pulser_ops.worker")


class RunContext:
    """One run attempt as the step executors see it (thread-safe, as the protocol asks)."""

    def __init__(
        self,
        held: HeldRun,
        client: Client,
        sink: EventSink,
        worker_id: str,
        workdir: Path | Callable[[HeldRun], Path],
        aclient: AsyncClient | None = None,
    ) -> None:
        self._held = held
        self._client = client
        self._aclient = aclient
        self._sink = sink
        self._worker_id = worker_id
        #: The directory, or how to name it (named only when a step asks: most never do).
        self._workdir = workdir
        self._workdir_made = False
        self._workdir_lock = threading.Lock()
        self.artifact_errors: list[str] = []

    @property
    def params(self) -> Mapping[str, Any]:
        return self._held.run.params

    @property
    def run_id(self) -> str:
        return self._held.run_id

    @property
    def attempt(self) -> int:
        return self._held.attempt

    @property
    def run(self) -> Run:
        """The run as claimed (owner, session, template...)."""
        return self._held.run

    @property
    def client(self) -> Client:
        """The worker's control-plane client, for built-in handlers that write rows beside
        their artifacts (spec kits) or read another run's artifacts on the run owner's
        behalf. A handler that uses it must check what the run's owner may see."""
        return self._client

    @property
    def worker_id(self) -> str:
        return self._worker_id

    @property
    def cancel_token(self) -> CancelToken:
        return self._held.token

    @property
    def workdir_made(self) -> bool:
        """Whether a step asked for the work directory (so there is one to remove)."""
        return self._workdir_made

    @property
    def workdir(self) -> Path:
        """Created on first use: most handler steps never touch it, and making and removing a
        directory per run was a visible share of a short run's cost."""
        with self._workdir_lock:
            if not isinstance(self._workdir, Path):
                self._workdir = self._workdir(self._held)
            if not self._workdir_made:
                # exist_ok=False: a directory someone else made under that name is refused,
                # as mkdtemp would.
                self._workdir.mkdir(mode=0o700)
                self._workdir_made = True
        return self._workdir

    def emit(
        self,
        kind: str,
        level: EventLevel,
        message: str,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        self._sink.add(
            self.run_id,
            kind,
            level,
            message,
            dict(data) if data is not None else None,
            attempt=self.attempt,
            worker_id=self._worker_id,
        )

    def save_artifact(
        self,
        name: str,
        data: str | bytes,
        kind: ArtifactKind = "text",
        content_type: str | None = None,
    ) -> None:
        data, content_type = _storable(data, content_type)
        try:
            self._client.artifacts.put(self.run_id, name, data, **self._put(kind, content_type))
        except PulserOpsError as e:
            self._not_saved(name, e)

    async def save_artifact_async(
        self,
        name: str,
        data: str | bytes,
        kind: ArtifactKind = "text",
        content_type: str | None = None,
    ) -> None:
        """``save_artifact`` from the event loop, on the loop's own client."""
        if self._aclient is None:
            await asyncio.to_thread(self.save_artifact, name, data, kind, content_type)
            return
        data, content_type = _storable(data, content_type)
        try:
            await self._aclient.artifacts.put(
                self.run_id, name, data, **self._put(kind, content_type)
            )
        except PulserOpsError as e:
            self._not_saved(name, e)

    def _put(self, kind: ArtifactKind, content_type: str | None) -> dict[str, Any]:
        return {
            "kind": kind,
            "content_type": content_type,
            "attempt": self.attempt,
            "metadata": {"worker_id": self._worker_id},
        }

    def _not_saved(self, name: str, e: PulserOpsError) -> None:
        # A lost artifact must not turn a good step into a failed one; say so instead.
        log.warning("run %s: artifact %s not saved: %s", self.run_id, name, e)
        self.artifact_errors.append(f"{name}: {e}")
        self.emit("artifact_failed", "warn", f"artifact {name!r} not saved: {e}", {"name": name})


def _storable(data: str | bytes, content_type: str | None) -> tuple[str | bytes, str | None]:
    if isinstance(data, str) and not storable(data):
        return _as_bytes(data, content_type)
    return data, content_type


def _as_bytes(text: str, content_type: str | None) -> tuple[bytes, str | None]:
    """``text`` as the bytes it stands for: text decoded with ``surrogateescape`` gets its
    original bytes back; other surrogates are kept as they were encoded (``surrogatepass``).
    The content type loses a UTF-8 charset the bytes no longer match."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        if content_type is not None:
            content_type = content_type.split(";", 1)[0].strip()
    return raw, content_type

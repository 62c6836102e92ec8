"""Output handling for process steps: batched live log events plus a bounded tail.

Live events go to ``run_events`` (one event per batch, not per line, so a chatty
step costs a handful of inserts per second), while the tail becomes the step's
``log`` artifact. The tail is bounded so a runaway step cannot exhaust worker memory.

Output is whatever bytes the process wrote. Events carry it decoded (invalid UTF-8 shows as
U+FFFD; the worker marks NUL as U+2400 on its way to the database), and a line longer than
the pipe reader's piece (64 KiB) is one truncated line, not hundreds. The artifact keeps the
raw bytes: it is text when they are clean UTF-8, and the bytes themselves (stored as a file)
when they are not, so nothing the step wrote is rewritten there.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from pulser_ops.steps.context import StepContext

_TRUNCATED = " …[line truncated]"


def decode_line(chunk: bytes) -> str:
    """Bytes from the pipe to one display line (no trailing newline)."""
    return chunk.decode("utf-8", errors="replace").rstrip("\r\n")


class LogTail:
    """The last ``limit_bytes`` of combined output, in arrival order."""

    def __init__(self, limit_bytes: int) -> None:
        self._limit = limit_bytes
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self.dropped_bytes = 0
        self.total_lines = 0

    def add(self, chunk: bytes, *, cut: bool = False) -> None:
        """``cut``: a piece of a longer line (the next piece of its stream goes on with it)."""
        if not cut:
            self.total_lines += 1
            if not chunk.endswith(b"\n"):
                chunk += b"\n"
        self._chunks.append(chunk)
        self._size += len(chunk)
        while self._size > self._limit and self._chunks:
            dropped = self._chunks.popleft()
            self._size -= len(dropped)
            self.dropped_bytes += len(dropped)

    def _header(self) -> str:
        if self.dropped_bytes:
            return f"[… {self.dropped_bytes} bytes of earlier output dropped …]\n"
        return ""

    def text(self) -> str:
        return self._header() + b"".join(self._chunks).decode("utf-8", errors="replace")

    def data(self) -> str | bytes:
        """The tail as text when it is clean UTF-8 text, else the raw bytes (a NUL, an
        invalid sequence): the artifact then keeps exactly what the step wrote."""
        body = b"".join(self._chunks)
        if b"\x00" not in body:
            try:
                return self._header() + body.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return self._header().encode() + body


def log_content_type(data: str | bytes) -> str:
    """The content type of a log artifact: UTF-8 text, or bytes that are not."""
    return "text/plain; charset=utf-8" if isinstance(data, str) else "text/plain"


class LogBatcher:
    """Collects lines and emits them as ``log`` events every N lines or T seconds.

    Only the thread that owns the batcher calls it; the reader threads hand lines to
    that thread through a queue, so batching needs no lock.
    """

    def __init__(
        self,
        ctx: StepContext,
        step_name: str,
        *,
        interval_seconds: float,
        max_lines: int,
        max_message_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ctx = ctx
        self._step = step_name
        self._interval = interval_seconds
        self._max_lines = max_lines
        self._max_bytes = max_message_bytes
        self._clock = clock
        self._pending: list[tuple[str, str]] = []
        self._first_at: float | None = None

    def add(self, stream: str, line: str, *, cut: bool = False) -> None:
        """``cut``: the line goes on beyond ``line`` (the rest is not shown)."""
        if cut or len(line.encode()) > self._max_bytes:
            keep = self._max_bytes - len(_TRUNCATED.encode())  # the marker fits in the event
            line = line.encode()[:keep].decode("utf-8", errors="ignore") + _TRUNCATED
        if not self._pending:
            self._first_at = self._clock()
        self._pending.append((stream, line))
        if len(self._pending) >= self._max_lines:
            self.flush()

    def seconds_until_due(self) -> float:
        """How long the owner may block before :meth:`maybe_flush` has work to do."""
        if self._first_at is None:
            return self._interval
        return max(0.0, self._first_at + self._interval - self._clock())

    def maybe_flush(self) -> None:
        if self._pending and self.seconds_until_due() <= 0:
            self.flush()

    def flush(self) -> None:
        """Emit pending lines: one event per run of same-stream lines within the size cap."""
        pending, self._pending, self._first_at = self._pending, [], None
        group: list[str] = []
        group_stream = ""
        size = 0
        for stream, line in pending:
            if group and (stream != group_stream or size + len(line) + 1 > self._max_bytes):
                self._emit(group_stream, group)
                group, size = [], 0
            group_stream = stream
            group.append(line)
            size += len(line) + 1
        if group:
            self._emit(group_stream, group)

    def _emit(self, stream: str, lines: list[str]) -> None:
        self._ctx.emit(
            "log",
            "info",
            "\n".join(lines),
            {"step": self._step, "stream": stream, "lines": len(lines)},
        )

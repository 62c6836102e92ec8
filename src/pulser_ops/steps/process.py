"""Run one child process in its own process group, stream its output, stop it on demand.

Shared by ``shell`` and ``docker`` steps. The child is started with
``start_new_session=True`` so that cancel/timeout can signal the *whole* group
(``sh -c`` plus everything it spawned): SIGTERM first, SIGKILL after a grace period.
The leader is only reaped after the group has been signalled, so its pid (and thus
the process-group id) cannot be recycled under us.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from pulser_ops.steps.context import CancelToken, StepContext
from pulser_ops.steps.logstream import LogBatcher, LogTail, decode_line
from pulser_ops.steps.outcome import StepOptions

StopReason = Literal["exited", "cancelled", "timeout"]

#: Longest line read in one piece; longer lines are split rather than buffered whole.
_MAX_LINE = 64 * 1024
#: Poll period of the supervising loop (cancel checks, leader exit checks).
_TICK = 0.05
#: After both pipes closed, the first wait before looking for the leader's exit again.
_SETTLE_FIRST = 0.0005
#: After the leader exits, how long leftover children may keep the pipes open before
#: the group is told to stop (they are orphans of a finished step).
_LEFTOVER_WAIT = 0.2
#: Lines buffered between the reader threads and the supervising loop.
_QUEUE_MAX = 10_000
#: After the final SIGKILL, how long to wait for pipes held by escaped processes.
_ABANDON_AFTER = 2.0


@dataclass(frozen=True)
class ProcessResult:
    """How the process ended; ``exit_code`` is negative when killed by a signal."""

    exit_code: int
    reason: StopReason
    #: The output's tail: text, or the raw bytes when they are not clean UTF-8 text.
    log: str | bytes
    lines: int
    sigkilled: bool


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # group already gone
        os.killpg(pgid, sig)


def _leader_exited(pid: int) -> bool:
    """True once the leader has exited, *without* reaping it (WNOWAIT)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _pump(stream_name: str, pipe: IO[bytes], out: queue.Queue[tuple[str, bytes | None]]) -> None:
    try:
        for chunk in iter(lambda: pipe.readline(_MAX_LINE), b""):
            out.put((stream_name, chunk))
    finally:
        pipe.close()
        out.put((stream_name, None))


class _Supervisor:
    """State machine for one process: running → stopping (TERM sent) → killed."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        *,
        token: CancelToken,
        timeout_seconds: float | None,
        kill_grace_seconds: float,
        on_stop: Callable[[], None] | None,
        kill_now: CancelToken | None = None,
    ) -> None:
        self.proc = proc
        self.token = token
        self.kill_token = kill_now
        self.started = time.monotonic()
        self.deadline = None if timeout_seconds is None else self.started + timeout_seconds
        self.grace = kill_grace_seconds
        self.on_stop = on_stop
        self.reason: StopReason = "exited"
        self.term_at: float | None = None
        self.killed_at: float | None = None
        self.leader_done_at: float | None = None

    def tick(self, streams_open: bool) -> None:
        now = time.monotonic()
        if self.leader_done_at is None and _leader_exited(self.proc.pid):
            self.leader_done_at = now
        if self.term_at is None:
            if self.leader_done_at is None:
                if self.token.is_set():
                    self._stop("cancelled", now)
                elif self.deadline is not None and now >= self.deadline:
                    self._stop("timeout", now)
            elif streams_open and now - self.leader_done_at >= _LEFTOVER_WAIT:
                self._stop("exited", now)  # orphans still hold the pipes: clean them up
        elif self.killed_at is None and (now - self.term_at >= self.grace or self._kill_now()):
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.killed_at = now

    def _kill_now(self) -> bool:
        return self.kill_token is not None and self.kill_token.is_set()

    def _stop(self, reason: StopReason, now: float) -> None:
        self.reason = reason
        self.term_at = now
        _signal_group(self.proc.pid, signal.SIGTERM)
        if self.on_stop is not None and reason != "exited":
            self.on_stop()

    def finished(self, streams_open: bool) -> bool:
        if self.leader_done_at is None:
            return False
        if not streams_open:
            return True
        return self.killed_at is not None and time.monotonic() - self.killed_at >= _ABANDON_AFTER

    def kill_now(self) -> None:
        """Last resort when the supervising loop itself fails: never leak a group.

        Safe because the leader is not reaped yet, so its pgid cannot be reused.
        """
        _signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def run_process(
    argv: Sequence[str],
    *,
    ctx: StepContext,
    step_name: str,
    env: Mapping[str, str],
    cwd: Path,
    timeout_seconds: float | None,
    kill_grace_seconds: float,
    options: StepOptions,
    on_stop: Callable[[], None] | None = None,
) -> ProcessResult:
    """Run ``argv`` (no shell) until it exits, is cancelled or times out.

    Raises ``OSError`` if the process cannot be started (missing executable...); every
    other outcome is a :class:`ProcessResult`. ``on_stop`` runs once when cancel or
    timeout begins stopping the process (docker uses it to remove the container).
    """
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    # Bounded: if events are consumed slower than the child writes, the reader threads
    # block, the pipe fills and the child is back-pressured instead of memory growing.
    lines: queue.Queue[tuple[str, bytes | None]] = queue.Queue(maxsize=_QUEUE_MAX)
    assert proc.stdout is not None and proc.stderr is not None
    for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        threading.Thread(
            target=_pump, args=(name, pipe, lines), name=f"step-{step_name}-{name}", daemon=True
        ).start()

    tail = LogTail(options.log_tail_bytes)
    batcher = LogBatcher(
        ctx,
        step_name,
        interval_seconds=options.flush_interval_seconds,
        max_lines=options.flush_max_lines,
        max_message_bytes=options.max_event_message_bytes,
    )
    sup = _Supervisor(
        proc,
        token=ctx.cancel_token,
        timeout_seconds=timeout_seconds,
        kill_grace_seconds=kill_grace_seconds,
        on_stop=on_stop,
        kill_now=options.kill_now,
    )
    open_streams = 2
    #: Streams in the middle of a line longer than a piece: the rest of it is not shown again.
    in_long_line: set[str] = set()
    #: Once both pipes closed, how soon to look for the leader's exit again (see below).
    settle = _SETTLE_FIRST
    try:
        while not sup.finished(open_streams > 0):
            wait = min(_TICK, batcher.seconds_until_due())
            if open_streams == 0:
                # The pipes close as the leader exits, a moment before it can be seen to have
                # exited: look again soon (a little later each time, in case it lives on
                # without them) rather than a whole tick, which was most of a short step.
                wait, settle = min(wait, settle), min(settle * 2, _TICK)
            try:
                item: tuple[str, bytes | None] | None = lines.get(timeout=wait)
            except queue.Empty:
                item = None
            while item is not None:
                stream, chunk = item
                if chunk is None:
                    open_streams -= 1
                else:
                    cut = len(chunk) >= _MAX_LINE and not chunk.endswith(b"\n")
                    tail.add(chunk, cut=cut)
                    if stream not in in_long_line:
                        batcher.add(stream, decode_line(chunk), cut=cut)
                    if cut:
                        in_long_line.add(stream)
                    else:
                        in_long_line.discard(stream)
                try:
                    item = lines.get_nowait()
                except queue.Empty:
                    item = None
            batcher.maybe_flush()
            sup.tick(open_streams > 0)
    except BaseException:
        sup.kill_now()
        raise
    finally:
        batcher.flush()
    exit_code = proc.wait()
    return ProcessResult(
        exit_code=exit_code,
        reason=sup.reason,
        log=tail.data(),
        lines=tail.total_lines,
        sigkilled=sup.killed_at is not None,
    )

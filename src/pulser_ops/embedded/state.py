"""The embedded database's small state file and the lock that guards it.

Why a file lock: two processes starting at once (a worker and a CLI command) must not both run
``initdb`` on the same directory or start two servers; ``flock`` is released by the kernel when
a holder dies, so a crashed process never wedges the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ConfigurationError

STATE_FILE = "embedded.json"
LOCK_FILE = "embedded.lock"
#: How long to wait for another process that is starting (initdb + migrations) the server.
LOCK_TIMEOUT_SECONDS = 180.0


@dataclass(frozen=True)
class State:
    """What a running (or last running) server looked like: enough to reconnect to it."""

    url: str
    tcp_url: str
    port: int
    pid: int | None
    bin_dir: str
    major: int
    schema: str  # fingerprint of the migrations + seed applied on this start
    started_at: float


def read(home: Path) -> State | None:
    try:
        raw = json.loads((home / STATE_FILE).read_text(encoding="utf-8"))
        return State(**raw)
    except (OSError, ValueError, TypeError):
        return None


def write(home: Path, state: State) -> None:
    """Atomically, readable only by us: the TCP URL carries the server's password."""
    target = home / STATE_FILE
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(asdict(state), fh, indent=2)
    os.replace(tmp, target)


def clear(home: Path) -> None:
    (home / STATE_FILE).unlink(missing_ok=True)


@contextlib.contextmanager
def locked(home: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold an exclusive lock on ``home`` (blocking up to ``timeout`` seconds)."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigurationError(
                        f"another process has held {home / LOCK_FILE} for over {timeout:.0f}s "
                        "(starting the embedded database?)"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

"""The embedded database: a private PostgreSQL under ``./.pulser-ops`` when nothing else is set.

``pulser_ops.connect()`` and the CLI call :func:`ensure_database` when neither a database URL nor
Supabase is configured. The first call creates the cluster (``initdb``), starts it and applies
the bootstrap, migrations and seed; later calls find it running and return at once (a stopped
server is started again, with its data). The server keeps running after the process that
started it exits, so workers, the CLI and scripts share it; ``pulser-ops local stop`` (or
:func:`stop`) shuts it down cleanly.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .. import resources
from ..errors import ConfigurationError, MigrationError
from . import binaries, placement, server, state
from .binaries import Binaries, ServerUser
from .server import Layout

Progress = Callable[[str], None]


def _home(home: str | Path) -> Path:
    return Path(home).expanduser().resolve()


def _say(on_progress: Progress | None, message: str) -> None:
    if on_progress is not None:
        on_progress(message)


def schema_fingerprint() -> str:
    """Hash of everything ``push`` applies, so an unchanged schema costs no round trip."""
    h = hashlib.sha256(resources.bootstrap_sql().encode())
    mig_dir = resources.migrations_dir()
    files = sorted(mig_dir.glob("*.sql")) if mig_dir.is_dir() else []
    seed = resources.seed_path()
    for f in [*files, *([seed] if seed.is_file() else [])]:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _migrate(url: str, on_progress: Progress | None) -> None:
    from ..db.migrate import PushEvent, push

    def progress(event: PushEvent) -> None:
        _say(on_progress, f"Applying {event.kind} {event.name}")

    try:
        push(url, include_seed=True, on_progress=progress)
    except MigrationError as e:
        raise MigrationError(
            e.reason, f"embedded database: {e}", versions=e.versions, sqlstate=e.sqlstate
        ) from None


def _running_port(layout: Layout) -> int | None:
    """The port of a server already running on this data directory (started elsewhere)."""
    if server.postmaster_pid(layout) is None:
        return None
    try:
        return int((layout.data / "postmaster.pid").read_text().splitlines()[3])
    except (OSError, ValueError, IndexError):
        return None


def _start(
    layout: Layout, previous: state.State | None, on_progress: Progress | None
) -> tuple[int, Binaries]:
    user: ServerUser = binaries.server_user()
    prefer = Path(previous.bin_dir) if previous else None
    bins = placement.reachable_binaries(binaries.find(layout.data_major(), prefer=prefer), user)
    if not layout.initialized():
        if placement.place_cluster(layout.home, user):
            _say(on_progress, f"{user.name} cannot enter {layout.home}: the cluster goes elsewhere")
        _say(on_progress, f"Creating the embedded PostgreSQL {bins.major} in {layout.root}")
        if layout.data.exists():  # a crashed initdb (we hold the lock): start over
            shutil.rmtree(layout.data)
        server.initdb(layout, bins, user)
    port = _running_port(layout)
    if port is not None and server.answers(server.urls(layout, port)[0]):
        return port, bins
    if port is not None:  # running but not answering us: restart it cleanly
        server.stop(layout, bins, user)
    _say(on_progress, f"Starting the embedded PostgreSQL ({bins.bin_dir})")
    return server.start(layout, bins, user), bins


def ensure_database(home: str | Path, *, on_progress: Progress | None = None) -> str:
    """URL of the embedded database under ``home``, creating/starting/migrating it if needed."""
    home_path = _home(home)
    try:
        return _ensure(home_path, on_progress)
    except OSError as e:
        raise ConfigurationError(f"embedded database in {home_path}: {e}") from None


def _ensure(home_path: Path, on_progress: Progress | None) -> str:
    layout = Layout(home_path)
    fingerprint = schema_fingerprint()
    with state.locked(home_path):
        previous = state.read(home_path)
        if previous is not None and server.answers(previous.url):
            if previous.schema != fingerprint:
                _migrate(previous.url, on_progress)
                state.write(home_path, _replace_schema(previous, fingerprint))
            return previous.url
        port, bins = _start(layout, previous, on_progress)
        url, tcp_url = server.urls(layout, port)
        _migrate(url, on_progress)
        state.write(
            home_path,
            state.State(
                url=url,
                tcp_url=tcp_url,
                port=port,
                pid=server.postmaster_pid(layout),
                bin_dir=str(bins.bin_dir),
                major=bins.major,
                schema=fingerprint,
                started_at=time.time(),
            ),
        )
        return url


def _replace_schema(st: state.State, fingerprint: str) -> state.State:
    return replace(st, schema=fingerprint)


def stop(home: str | Path) -> bool:
    """Stop the embedded server cleanly; False when it was not running."""
    home_path = _home(home)
    try:
        return _stop(home_path)
    except OSError as e:
        raise ConfigurationError(f"embedded database in {home_path}: {e}") from None


def _stop(home_path: Path) -> bool:
    layout = Layout(home_path)
    if not layout.initialized():
        return False
    with state.locked(home_path):
        if server.postmaster_pid(layout) is None:
            return False
        previous = state.read(home_path)
        bins = binaries.find(
            layout.data_major(), prefer=Path(previous.bin_dir) if previous else None
        )
        server.stop(layout, bins, binaries.server_user())
        return True


@dataclass(frozen=True)
class Status:
    """What ``pulser-ops local status`` shows."""

    home: Path
    data_dir: Path
    #: True when the data lives outside ``home`` (the server's OS user cannot enter it).
    relocated: bool
    initialized: bool
    running: bool
    pid: int | None
    url: str | None
    tcp_url: str | None
    port: int | None
    bin_dir: str | None
    major: int | None


def status(home: str | Path) -> Status:
    home_path = _home(home)
    layout = Layout(home_path)
    st = state.read(home_path)
    pid = server.postmaster_pid(layout)
    # A server may run without a state file (its migration failed): the pid file decides.
    running = pid is not None and (st is None or server.answers(st.url))
    return Status(
        home=home_path,
        data_dir=layout.data,
        relocated=layout.relocated,
        initialized=layout.initialized(),
        running=running,
        pid=pid if running else None,
        url=st.url if st else None,
        tcp_url=st.tcp_url if st else None,
        port=st.port if st else None,
        bin_dir=st.bin_dir if st else None,
        major=layout.data_major(),
    )


__all__ = ["Status", "ensure_database", "schema_fingerprint", "status", "stop"]

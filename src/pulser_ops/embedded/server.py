"""Create, start and stop the embedded cluster with ``initdb`` / ``pg_ctl``.

Layout under the home directory (``./.pulser-ops`` by default)::

    pg/data/        the cluster (owned by the server's OS user, 0700)
    pg/run/         its unix socket (0700: only that user and root may connect)
    pg/server.log   the server log

``pg`` may be a link to a directory outside the home (see :mod:`.placement`); every path given
to the server is the resolved one, so the server never needs to enter the home itself.

The server listens on that socket (trust: the directory's permissions are the guard) and on
127.0.0.1 with a random password (for tools that only speak TCP, and for homes whose path is
too long for a socket). ``pg_ctl start`` detaches the server into its own session, so it
outlives the command that started it and Ctrl-C in a terminal does not stop it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg

from ..errors import ConfigurationError
from .binaries import Binaries, ServerUser

SUPERUSER = "postgres"
DATABASE = "postgres"
#: Unix socket paths longer than this do not fit ``sockaddr_un.sun_path``.
MAX_SOCKET_PATH = 107
START_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Layout:
    home: Path

    @property
    def root(self) -> Path:
        return Path(os.path.realpath(self.home / "pg"))

    @property
    def relocated(self) -> bool:
        """True when the cluster lives outside the home (``home/pg`` is a link)."""
        return (self.home / "pg").is_symlink()

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def password_file(self) -> Path:
        return self.home / "pg-password"

    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").is_file()

    def data_major(self) -> int | None:
        try:
            return int((self.data / "PG_VERSION").read_text().strip().split(".")[0])
        except (OSError, ValueError):
            return None


def _run(user: ServerUser, args: list[str], *, detach: bool = False) -> str:
    try:
        res = subprocess.run(
            [*user.prefix(), *args],
            capture_output=True,
            text=True,
            check=False,
            start_new_session=detach,
            timeout=START_TIMEOUT_SECONDS + 30,
        )
    except subprocess.TimeoutExpired:
        raise ConfigurationError(f"{Path(args[0]).name} did not finish in time") from None
    if res.returncode != 0:
        lines = (res.stderr or res.stdout).strip().splitlines()
        raise ConfigurationError(
            f"{Path(args[0]).name} failed (exit {res.returncode}): {lines[-1] if lines else ''}"
        )
    return res.stdout


def _quote_conf(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def password(layout: Layout) -> str:
    return layout.password_file.read_text(encoding="utf-8").strip()


def initdb(layout: Layout, bins: Binaries, user: ServerUser) -> None:
    """A fresh cluster with a random superuser password and our settings."""
    for d in (layout.root, layout.run):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)
        user.chown(d)
    secret = secrets.token_urlsafe(24)
    layout.password_file.touch(mode=0o600)
    layout.password_file.write_text(secret + "\n", encoding="utf-8")
    pwfile = layout.root / "pwfile"
    pwfile.write_text(secret + "\n", encoding="utf-8")
    pwfile.chmod(0o600)
    user.chown(pwfile)
    try:
        _run(
            user,
            [bins.tool("initdb"), "-D", str(layout.data), "-U", SUPERUSER,
             f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
             "--encoding=UTF8", "--locale=C.UTF-8"],
        )  # fmt: skip
    finally:
        pwfile.unlink(missing_ok=True)
    settings = {
        "listen_addresses": _quote_conf("127.0.0.1"),
        "unix_socket_directories": _quote_conf(str(layout.run)),
        "unix_socket_permissions": "0700",
        "max_connections": "100",
        "log_min_messages": "warning",
        "timezone": _quote_conf("UTC"),
    }
    with (layout.data / "postgresql.conf").open("a", encoding="utf-8") as fh:
        fh.write("\n# pulser-ops embedded database\n")
        fh.writelines(f"{k} = {v}\n" for k, v in settings.items())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def urls(layout: Layout, port: int) -> tuple[str, str]:
    """(preferred URL, TCP URL). The socket URL is preferred when its path fits."""
    secret = quote(password(layout), safe="")
    tcp = f"postgresql://{SUPERUSER}:{secret}@127.0.0.1:{port}/{DATABASE}"
    if len(str(layout.run / f".s.PGSQL.{port}")) > MAX_SOCKET_PATH:
        return tcp, tcp
    host = quote(str(layout.run), safe="")
    sock = f"postgresql://{SUPERUSER}@/{DATABASE}?host={host}&port={port}"
    return sock, tcp


def start(layout: Layout, bins: Binaries, user: ServerUser, attempts: int = 3) -> int:
    """Start the server on a free port (another port if one is grabbed meanwhile)."""
    layout.log.touch(exist_ok=True)
    user.chown(layout.log)
    error: ConfigurationError | None = None
    for _ in range(attempts):
        port = free_port()
        try:
            _run(
                user,
                [bins.tool("pg_ctl"), "-D", str(layout.data), "-l", str(layout.log),
                 "-o", f"-p {port}", "-w", "-t", str(START_TIMEOUT_SECONDS), "start"],
                detach=True,
            )  # fmt: skip
            return port
        except ConfigurationError as e:
            error = ConfigurationError(f"{e}; see {layout.log}")
    assert error is not None
    raise error


def stop(layout: Layout, bins: Binaries, user: ServerUser) -> None:
    _run(user, [bins.tool("pg_ctl"), "-D", str(layout.data), "-m", "fast", "-w", "stop"])


def postmaster_pid(layout: Layout) -> int | None:
    """The running server's pid from ``postmaster.pid`` (None when it is not running)."""
    try:
        pid = int((layout.data / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except PermissionError:
        return pid  # alive, owned by the server's OS user
    except OSError:
        return None
    return pid


def answers(url: str) -> bool:
    """True when a server accepts a connection at ``url``."""
    with contextlib.suppress(psycopg.Error):
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            conn.execute("select 1")
        return True
    return False

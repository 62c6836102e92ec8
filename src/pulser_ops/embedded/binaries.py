"""Which PostgreSQL server binaries the embedded database runs, and as which OS user.

Why prefer the system's binaries: a distribution's PostgreSQL carries the contrib extensions
(``pgcrypto``, ...) that the bootstrap expects; the ``pgserver`` wheel is a self-contained
fallback for machines without a server installed. PostgreSQL refuses to run as root, so under
root every server binary runs as the ``postgres`` OS user (or a dedicated system user).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigurationError

#: An explicit bin dir (holding ``initdb``, ``pg_ctl``, ``postgres``) beats every guess.
BIN_ENV = "PULSER_OPS_PG_BIN"
#: OS user the server runs as when we are root and there is no ``postgres`` user.
DEDICATED_USER = "pulser-ops-pg"
_REQUIRED = ("initdb", "pg_ctl", "postgres")


@dataclass(frozen=True)
class Binaries:
    """A usable set of server binaries and their major version."""

    bin_dir: Path
    major: int
    source: str  # "env", "pg_config", "system" or "pgserver"

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)


def _complete(bin_dir: Path) -> bool:
    return all((bin_dir / n).is_file() and os.access(bin_dir / n, os.X_OK) for n in _REQUIRED)


def major_version(bin_dir: Path) -> int | None:
    """Major version reported by ``postgres --version`` (None when it does not run)."""
    try:
        out = subprocess.run(
            [str(bin_dir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\b(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def _pg_config_bindir() -> Path | None:
    exe = shutil.which("pg_config")
    if exe is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            [exe, "--bindir"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        return Path(out) if out else None
    return None


def _system_bindirs() -> list[Path]:
    """Debian/Ubuntu-style ``/usr/lib/postgresql/<major>/bin``, newest first."""
    root = Path("/usr/lib/postgresql")
    if not root.is_dir():
        return []
    found = [p / "bin" for p in root.iterdir() if p.name.isdigit()]
    return sorted(found, key=lambda p: int(p.parent.name), reverse=True)


def _pgserver_bindir() -> Path | None:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def candidates() -> list[tuple[Path, str]]:
    """Every place binaries may be, in order of preference."""
    out: list[tuple[Path, str]] = []
    if override := os.environ.get(BIN_ENV):
        out.append((Path(override), "env"))
    if (cfg := _pg_config_bindir()) is not None:
        out.append((cfg, "pg_config"))
    out.extend((p, "system") for p in _system_bindirs())
    if (wheel := _pgserver_bindir()) is not None:
        out.append((wheel, "pgserver"))
    return out


def find(major: int | None = None, prefer: Path | None = None) -> Binaries:
    """The first complete set of binaries (of ``major`` when a data directory needs one)."""
    tried: list[str] = []
    ordered = candidates()
    if prefer is not None:
        ordered.insert(0, (prefer, "recorded"))
    seen: set[Path] = set()
    for bin_dir, source in ordered:
        if bin_dir in seen:
            continue
        seen.add(bin_dir)
        tried.append(str(bin_dir))
        if not _complete(bin_dir):
            continue
        found = major_version(bin_dir)
        if found is None or (major is not None and found != major):
            continue
        return Binaries(bin_dir, found, source)
    wanted = f"PostgreSQL {major} " if major is not None else "PostgreSQL "
    raise ConfigurationError(
        f"no {wanted}server binaries found for the embedded database (tried: "
        f"{', '.join(tried) or 'nothing'}); install PostgreSQL, install the pgserver wheel, "
        f"set {BIN_ENV}, or point PULSER_OPS_DATABASE_URL / SUPABASE_URL at a database"
    )


# ------------------------------------------------------------------------------------------------
# the OS user the server runs as
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerUser:
    """Who runs the server: ourselves, or (under root) another OS user via ``runuser``."""

    name: str | None  # None: the current user

    def prefix(self) -> list[str]:
        return ["runuser", "-u", self.name, "--"] if self.name else []

    def chown(self, path: Path) -> None:
        if self.name:
            shutil.chown(path, user=self.name, group=pwd.getpwnam(self.name).pw_gid)


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def server_user() -> ServerUser:
    """The current user, unless root: then ``postgres``, else a dedicated system user."""
    if os.geteuid() != 0:
        return ServerUser(None)
    if _exists("postgres"):
        return ServerUser("postgres")
    if not _exists(DEDICATED_USER):
        useradd = shutil.which("useradd")
        if useradd is None:
            raise ConfigurationError(
                "running as root, the embedded PostgreSQL needs a non-root OS user: create a "
                "'postgres' user or run pulser-ops as a regular user"
            )
        res = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             DEDICATED_USER],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if res.returncode != 0 and not _exists(DEDICATED_USER):
            raise ConfigurationError(
                f"could not create OS user {DEDICATED_USER} for the embedded PostgreSQL: "
                f"{res.stderr.strip()}"
            )
    return ServerUser(DEDICATED_USER)

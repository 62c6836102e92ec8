"""Where the embedded cluster lives, so that the server's OS user can always reach it.

Why this exists: PostgreSQL refuses to run as root, so under root the server runs as the
``postgres`` OS user (see :mod:`.binaries`). A root-owned project directory with mode 700 (the
common case: a container working in ``/root/project``) is closed to that user, and ``initdb``
would fail there. Instead of failing, the cluster then lives under a directory that user can
reach, :data:`DEFAULT_DATA_ROOT` (``/var/lib/pulser-ops``, or ``$PULSER_OPS_PG_DATA_ROOT``),
owned by it with mode 700, and ``<home>/pg`` becomes a symbolic link to it: everything that
looks for the cluster under the home still finds it, and ``pulser-ops local status`` shows
where it really is. The same goes for server binaries that user cannot execute (the pgserver
wheel inside a private virtualenv): they are copied once next to the data.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
from pathlib import Path

from ..errors import ConfigurationError
from .binaries import Binaries, ServerUser

#: Base directory for clusters (and binaries) moved out of an unreachable home.
DATA_ROOT_ENV = "PULSER_OPS_PG_DATA_ROOT"
DEFAULT_DATA_ROOT = Path("/var/lib/pulser-ops")
#: Written into a moved cluster's directory: which home it belongs to (for people cleaning up).
HOME_MARKER = "HOME"


def data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT)


def blocked_at(user: ServerUser, path: Path) -> Path | None:
    """The first existing directory on the way to ``path`` that ``user`` cannot enter (None:
    it can reach ``path``, or it is ourselves). Directories that do not exist yet are skipped:
    we create them with modes that let the server in."""
    if user.name is None:
        return None
    entry = pwd.getpwnam(user.name)
    groups = set(os.getgrouplist(user.name, entry.pw_gid))
    for parent in [*reversed(path.parents), path]:
        try:
            st = parent.stat()
        except FileNotFoundError:
            return None
        if st.st_uid == entry.pw_uid:
            ok = bool(st.st_mode & 0o100)
        elif st.st_gid in groups:
            ok = bool(st.st_mode & 0o010)
        else:
            ok = bool(st.st_mode & 0o001)
        if not ok:
            return parent
    return None


def _ensure_base(base: Path) -> None:
    """``base`` and its missing parents, enterable by every user (0755)."""
    missing = [p for p in [*reversed(base.parents), base] if not p.exists()]
    for p in missing:
        p.mkdir(mode=0o755)
        p.chmod(0o755)  # mkdir's mode is filtered by the umask


def _unreachable(user: ServerUser, path: Path, why: str) -> ConfigurationError:
    blocked = blocked_at(user, path)
    return ConfigurationError(
        f"the embedded PostgreSQL runs as OS user {user.name!r} (PostgreSQL refuses root) and "
        f"cannot enter {blocked}, {why}: run `chmod o+x {blocked}`, set {DATA_ROOT_ENV} to a "
        f"directory it can reach, or run as a regular user"
    )


def place_cluster(home: Path, user: ServerUser) -> bool:
    """Before ``initdb``: make ``home/pg`` a directory the server can use. Returns True when
    the cluster was placed outside the home (``home/pg`` is then a link to it).

    An existing ``home/pg`` (directory or link) is kept as it is.
    """
    link = home / "pg"
    if link.is_symlink() or link.exists() or blocked_at(user, home) is None:
        return link.is_symlink()
    base = data_root() / "embedded"
    _ensure_base(base)
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:10]
    # A random part too: a home deleted and made again at the same path must not pick up
    # the old cluster (its password file is gone with the home).
    target = base / f"{home.name or 'home'}-{digest}-{secrets.token_hex(3)}"
    target.mkdir(mode=0o700)
    (target / HOME_MARKER).write_text(f"{home}\n", encoding="utf-8")
    user.chown(target)
    if blocked_at(user, target) is not None:
        shutil.rmtree(target, ignore_errors=True)
        raise _unreachable(user, target, f"on the way to {target}")
    home.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
    return True


def _copy_readable(src: Path, dst: Path) -> None:
    """Copy a tree, readable (and directories enterable) by every user."""
    shutil.copytree(src, dst, symlinks=True)
    for d, dirs, files in os.walk(dst):
        for name in [*dirs, *files]:
            p = Path(d) / name
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | 0o444 | (0o111 if p.is_dir() else 0))
    dst.chmod(0o755)


def reachable_binaries(bins: Binaries, user: ServerUser) -> Binaries:
    """``bins``, or a copy of their installation the server user can execute.

    Only self-contained installs can be copied: the pgserver wheel's ``pginstall`` (``bin/``,
    ``lib/``, ``share/`` side by side, found relative to the binary) and the shared libraries
    auditwheel put beside the package (``pgserver.libs``, found through the binaries' RPATH
    ``$ORIGIN/../../../pgserver.libs``), copied with the same relative layout. A system
    install the server cannot reach is reported, never copied.
    """
    if blocked_at(user, bins.bin_dir) is None:
        return bins
    install = bins.bin_dir.resolve().parent
    if bins.source not in ("pgserver", "recorded", "env") or not (install / "share").is_dir():
        raise _unreachable(user, bins.bin_dir, f"where the PostgreSQL binaries are ({install})")
    digest = hashlib.sha256(str(install).encode()).hexdigest()[:10]
    target = data_root() / "bin" / f"postgresql-{bins.major}-{digest}"
    bin_dir = target / "pgserver" / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        _ensure_base(target.parent)
        partial = target.with_name(target.name + f".partial-{secrets.token_hex(3)}")
        partial.mkdir(mode=0o755)
        (partial / "pgserver").mkdir(mode=0o755)
        _copy_readable(install, partial / "pgserver" / "pginstall")
        libs = install.parent.parent / "pgserver.libs"
        if libs.is_dir():
            _copy_readable(libs, partial / "pgserver.libs")
        partial.chmod(0o755)
        try:
            partial.rename(target)
        except OSError:  # another process copied it first
            shutil.rmtree(partial, ignore_errors=True)
    if blocked_at(user, bin_dir) is not None:
        raise _unreachable(user, target, "where its copy of the binaries is")
    return Binaries(bin_dir, bins.major, f"{bins.source} (copied from {bins.bin_dir})")

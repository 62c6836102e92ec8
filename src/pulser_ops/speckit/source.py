"""Reading a spec kit from a directory, a zip archive or a git ref, safely.

Everything a kit is read from is untrusted: a zip from an earlier run, a pull request's
files, a path an operator typed. So every reader refuses, before anything is used, what could
escape its root or exhaust the worker: members named ``../x`` or ``/etc/x``, symlinks out of
the tree, a file over :data:`MAX_FILE_BYTES`, an archive over :data:`MAX_ARCHIVE_BYTES`, more
than :data:`MAX_FILES` entries. Refusals are :class:`~pulser_ops.errors.InvalidInput` (or
``NotFound``) with one line that names the culprit; nothing is written anywhere.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import shutil
import stat
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import InvalidInput, NotFound
from ..files import check_object_path

MAX_FILE_BYTES = 1024 * 1024
MAX_ARCHIVE_BYTES = 16 * 1024 * 1024
MAX_TOTAL_BYTES = 32 * 1024 * 1024
MAX_FILES = 20_000
GIT_TIMEOUT_SECONDS = 120
#: Folders never walked into: they hold no specs and can be huge.
SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__", ".tox"})

_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}$")


class Tree(Protocol):
    """Files of a source, by POSIX path relative to its root; ``display`` is how the root is
    shown in findings (``spec/x/prd.md`` rather than ``prd.md`` when the user named
    ``spec/x``)."""

    display: str

    def files(self) -> list[str]: ...

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None if the tree has no such file."""


def check_member(name: str, where: str) -> str:
    """A relative POSIX path with no way out (the artifacts' own rule: no leading ``/``, no
    ``.``/``..`` segments, no backslashes or control characters)."""
    try:
        return check_object_path(name)
    except InvalidInput:
        raise InvalidInput(f"{where}: refused: {name!r} is not a safe relative path") from None


def _too_big(what: str, size: int, limit: int) -> InvalidInput:
    return InvalidInput(f"{what} is {size:,} bytes; the limit is {limit:,} bytes")


@dataclass
class MemoryTree:
    """Files held in memory (what a zip archive held)."""

    contents: dict[str, bytes]
    display: str = ""

    def files(self) -> list[str]:
        return sorted(self.contents)

    def read(self, path: str) -> bytes | None:
        return self.contents.get(path)


def read_zip(data: bytes, where: str = "zip archive") -> MemoryTree:
    """Every regular file of a zip archive, or InvalidInput if any member is unsafe."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise _too_big(where, len(data), MAX_ARCHIVE_BYTES)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise InvalidInput(f"{where}: not a zip archive ({e})") from None
    if len(infos) > MAX_FILES:
        raise InvalidInput(f"{where}: {len(infos):,} members; the limit is {MAX_FILES:,}")
    contents: dict[str, bytes] = {}
    total = 0
    with zf:
        for info in infos:
            name = info.filename
            check_member(name.rstrip("/") if info.is_dir() else name, where)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise InvalidInput(f"{where}: refused: member {name!r} is a symbolic link")
            if info.is_dir():
                continue
            if info.flag_bits & 0x1:
                raise InvalidInput(f"{where}: refused: member {name!r} is encrypted")
            if info.file_size > MAX_FILE_BYTES:
                raise _too_big(f"{where}: member {name!r}", info.file_size, MAX_FILE_BYTES)
            if name in contents:
                raise InvalidInput(f"{where}: refused: member {name!r} appears twice")
            try:
                with zf.open(info) as f:
                    body = f.read(MAX_FILE_BYTES + 1)  # the header's size may lie
            except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as e:
                raise InvalidInput(f"{where}: member {name!r} cannot be read ({e})") from None
            if len(body) > MAX_FILE_BYTES:
                raise _too_big(f"{where}: member {name!r}", len(body), MAX_FILE_BYTES)
            total += len(body)
            if total > MAX_TOTAL_BYTES:
                raise _too_big(f"{where}: its contents", total, MAX_TOTAL_BYTES)
            contents[name] = body
    return MemoryTree(contents)


class DirTree:
    """A directory on disk. Symbolic links are followed only when they stay inside it."""

    def __init__(self, root: Path, display: str = "") -> None:
        self.root = root.resolve()
        self.display = display
        self._files: list[str] | None = None

    def files(self) -> list[str]:
        if self._files is None:
            found: list[str] = []
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames[:] = sorted(
                    d for d in dirnames
                    if d not in SKIP_DIRS and (not d.startswith(".") or d == ".specify")
                )  # fmt: skip
                rel = Path(dirpath).relative_to(self.root).as_posix()
                for f in filenames:
                    found.append(f if rel == "." else f"{rel}/{f}")
                    if len(found) > MAX_FILES:
                        raise InvalidInput(
                            f"{self.root}: more than {MAX_FILES:,} files; name a smaller folder"
                        )
            self._files = sorted(found)
        return self._files

    def read(self, path: str) -> bytes | None:
        check_member(path, str(self.root))
        target = (self.root / path).resolve()
        if self.root != target and self.root not in target.parents:
            raise InvalidInput(f"{path}: refused: a symbolic link out of {self.root}")
        try:
            st = target.stat()
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size > MAX_FILE_BYTES:
            raise _too_big(_shown(self.display, path), st.st_size, MAX_FILE_BYTES)
        with target.open("rb") as f:
            body = f.read(MAX_FILE_BYTES + 1)
        if len(body) > MAX_FILE_BYTES:
            raise _too_big(_shown(self.display, path), len(body), MAX_FILE_BYTES)
        return body


def _shown(display: str, path: str) -> str:
    return posixpath.join(display, path) if display else path


@dataclass(frozen=True)
class Opened:
    """A tree plus, when the user named one kit's folder, the root of that kit in it."""

    tree: Tree
    only: str | None = None


def open_path(path: Path | str, display: str | None = None) -> Opened:
    """A directory or a ``.zip`` file on disk; findings show paths under ``display`` (by
    default the path as given).

    A Spec Kit feature folder (``specs/001-x``) is read from its repository's root so that
    ``.specify/memory/constitution.md`` is found; only that feature is validated.
    """
    p = Path(path)
    shown = _display(Path(display)) if display is not None else _display(p)
    try:
        return _open_path(p, path, shown)
    except OSError as e:  # a name too long, a loop of links, no permission: one clear error
        named = str(path) if len(str(path)) <= 200 else f"{str(path)[:200]}…"
        raise InvalidInput(f"{named}: cannot be read ({e.strerror or e})") from None


def _open_path(p: Path, path: Path | str, shown: str) -> Opened:
    if not p.exists():
        raise NotFound(f"{path}: no such file or directory")
    if p.is_dir():
        repo = p.resolve().parent.parent
        if (
            p.resolve().parent.name == "specs"
            and (p / "spec.md").exists()
            and (repo / ".specify").is_dir()
        ):
            up = posixpath.normpath(posixpath.join(shown or ".", "..", ".."))
            return Opened(DirTree(repo, "" if up == "." else up), only=f"specs/{p.resolve().name}")
        return Opened(DirTree(p, shown))
    if not p.is_file():
        raise InvalidInput(f"{path}: neither a directory nor a zip archive")
    size = p.stat().st_size
    if size > MAX_ARCHIVE_BYTES:
        raise _too_big(str(path), size, MAX_ARCHIVE_BYTES)
    with p.open("rb") as f:
        data = f.read(MAX_ARCHIVE_BYTES + 1)
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise InvalidInput(f"{path}: neither a directory nor a zip archive")
    tree = read_zip(data, shown or str(path))
    return Opened(tree)


def _display(p: Path) -> str:
    """How a path the user typed is shown: relative stays relative, ``.`` becomes ""."""
    text = os.path.normpath(str(p)).replace(os.sep, "/")
    return "" if text == "." else text


def subtree(tree: Tree, path: str) -> Opened:
    """Narrow ``tree`` to the folder ``path`` inside it (for zip and git sources)."""
    path = path.strip("/")
    if not path:
        return Opened(tree)
    check_member(path, "path")
    prefix = path + "/"
    inside = {f[len(prefix) :]: f for f in tree.files() if f.startswith(prefix)}
    if not inside:
        raise NotFound(f"{path}: no such folder in the source")
    contents = {}
    for short, full in inside.items():
        body = tree.read(full)
        if body is not None:
            contents[short] = body
    return Opened(MemoryTree(contents, _shown(tree.display, path)))


# --- git -------------------------------------------------------------------------------------


def check_ref(ref: str) -> str:
    if not _REF.match(ref) or ".." in ref or ref.endswith((".lock", "/", ".")) or "//" in ref:
        raise InvalidInput(f"git ref {ref!r} is not a branch, tag or commit name")
    return ref


def _git(args: list[str], cwd: Path | None = None) -> bytes:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": "https:file",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:
        raise NotFound("git is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise InvalidInput(f"git {args[0]} took longer than {GIT_TIMEOUT_SECONDS}s") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise NotFound(f"git {args[0]}: {message[-1] if message else 'failed'}")
    return done.stdout


class GitTree:
    """The files of one commit, read with ``git ls-tree`` / ``git cat-file`` (never checked
    out, so nothing in the commit can run or write)."""

    def __init__(self, git_dir: Path, commit: str, display: str = "") -> None:
        self.git_dir = git_dir
        self.commit = commit
        self.display = display
        self._files: list[str] | None = None
        self._set: frozenset[str] | None = None

    def files(self) -> list[str]:
        if self._files is None:
            out = _git(["ls-tree", "-r", "-z", "--full-tree", self.commit], self.git_dir)
            found: list[str] = []
            for entry in out.split(b"\0"):
                if not entry:
                    continue
                meta, _, name = entry.partition(b"\t")
                mode, kind = meta.split(b" ")[:2]
                if kind == b"blob" and mode in (b"100644", b"100755"):
                    found.append(name.decode("utf-8", errors="replace"))
                if len(found) > MAX_FILES:
                    raise InvalidInput(f"git {self.commit}: more than {MAX_FILES:,} files")
            self._files = sorted(found)
        return self._files

    def _known(self) -> frozenset[str]:
        if self._set is None:
            self._set = frozenset(self.files())
        return self._set

    def read(self, path: str) -> bytes | None:
        check_member(path, f"git {self.commit}")
        if path not in self._known():
            return None
        spec = f"{self.commit}:{path}"
        size = int(_git(["cat-file", "-s", spec], self.git_dir).strip() or 0)
        if size > MAX_FILE_BYTES:
            raise _too_big(_shown(self.display, path), size, MAX_FILE_BYTES)
        return _git(["cat-file", "blob", spec], self.git_dir)


@contextmanager
def open_git(repo: str, ref: str, base: Path) -> Iterator[GitTree]:
    """The tree of ``ref`` in ``repo``: an ``https://`` URL (fetched, depth 1, into a
    temporary bare repository) or a local repository inside ``base``."""
    check_ref(ref)
    if repo.startswith("https://"):
        tmp = Path(tempfile.mkdtemp(prefix="pulser-speckit-git-"))
        try:
            _git(["init", "-q", "--bare", str(tmp)])
            _git(["fetch", "-q", "--depth=1", "--no-tags", "--", repo, ref], tmp)
            fetched = _git(["rev-parse", "--verify", "FETCH_HEAD^{commit}"], tmp)
            yield GitTree(tmp, fetched.decode().strip())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    local = inside(base, repo, "git_repo")
    if not local.exists():
        raise NotFound(f"git_repo {repo!r}: no such repository under {base}")
    commit = _git(["rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}"], local)
    yield GitTree(local, commit.decode().strip())


def inside(base: Path, relative: str, what: str) -> Path:
    """``base/relative``, refused if ``relative`` is absolute or leads out of ``base``."""
    if not relative or Path(relative).is_absolute() or relative.startswith("~"):
        raise InvalidInput(f"{what}: {relative!r} must be a path relative to {base}")
    root = base.resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise InvalidInput(f"{what}: {relative!r} leads out of {base}")
    return target

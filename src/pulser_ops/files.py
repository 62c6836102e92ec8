"""Where artifact files live: Supabase Storage, or a local directory.

Files always sit at ``<run id>/<attempt>/<key>`` in the ``run-artifacts`` bucket, so the
Storage policies that mirror the runs' RLS apply to them; the key is the artifact's name made a
valid Storage key (``storage_key``). Without Supabase (a direct or embedded database) the same
layout is kept under a local directory, so a name that works on one transport works on the other.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Protocol

from .errors import InvalidInput, NotFound

BUCKET = "run-artifacts"

#: Characters a Supabase Storage object key may hold (storage ``src/storage/limits.ts``,
#: ``VALID_OBJECT_KEY``); anything else is refused with 400 ``InvalidKey``.
STORAGE_KEY_CHARS = re.compile(r"^[A-Za-z0-9_/!.*'() &$=@;:+,?-]*$")
#: The characters an artifact name keeps in its file's key: the above but ``*``, the escape.
_KEEP = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" "_/!.'() &$=@;:+,?-"
)
#: Bytes: of a name (UTF-8), and of each ``/`` segment of a key (a file name on a local disk).
MAX_NAME_BYTES = 255
MAX_SEGMENT_BYTES = 255


def storage_key(name: str) -> str:
    """The key of an artifact's file within its run's folder: the name, with every character
    Storage would refuse (and ``*``, the escape) written as ``*`` and the hex of each of its
    UTF-8 bytes (``ünï.txt`` -> ``*C3*BCn*C3*AF.txt``). Valid on Storage and on a local disk
    alike, the same on both transports, and no two names share a key. ``pulser_ops.storage_key``
    in SQL is this function; ``put_artifact`` checks the path against it."""
    if all(c in _KEEP for c in name):
        return name
    return "".join(
        c if c in _KEEP else "".join(f"*{b:02X}" for b in c.encode("utf-8")) for c in name
    )


def _unsafe_path(path: str) -> bool:
    """Could escape its folder or is no plain relative path (leading or doubled ``/``, ``.``
    or ``..`` segments, a backslash, a control character)."""
    parts = path.split("/")
    return (
        not path
        or path.startswith("/")
        or "\\" in path
        or any(p in ("", ".", "..") for p in parts)
        or any(unicodedata.category(c) == "Cc" for c in path)
    )


def artifact_name_problem(name: str) -> str | None:
    """What is wrong with an artifact name, or None; the rule of SQL's
    ``pulser_ops.artifact_name_problem``, checked before anything is sent or stored."""
    if not name:
        return "an artifact needs a name"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "not valid text (a lone surrogate)"
    if size > MAX_NAME_BYTES:
        return f"at most {MAX_NAME_BYTES} bytes (this one is {size})"
    if _unsafe_path(name):
        return (
            "not a safe relative path (no leading /, no . or .. segments, no backslashes or "
            "control characters)"
        )
    longest = max(len(s.encode()) for s in storage_key(name).split("/"))
    if longest > MAX_SEGMENT_BYTES:
        return (
            f"a path segment is {longest} bytes as a file key (characters other than letters, "
            f"digits and _/!.'() &$=@;:+,?- take 3 bytes per UTF-8 byte); "
            f"at most {MAX_SEGMENT_BYTES}"
        )
    return None


def check_artifact_name(name: str) -> str:
    if (problem := artifact_name_problem(name)) is not None:
        raise InvalidInput(f"artifact name {name[:80]!r}: {problem}")
    return name


def check_object_path(path: str, *, new: bool = False) -> str:
    """Refuse anything that could escape the run's folder (the SQL checks the same rule).

    ``new``: a file about to be written, whose path must also be a valid Storage key with no
    segment over 255 bytes, on either store alike. Reading or removing accepts any safe path:
    files written before keys were encoded have the artifact's name as their key."""
    if len(path) > 1024 or _unsafe_path(path):
        raise InvalidInput(f"{path[:120]!r} is not a safe relative path")
    if new and (
        not STORAGE_KEY_CHARS.match(path)
        or max(len(s.encode()) for s in path.split("/")) > MAX_SEGMENT_BYTES
    ):
        raise InvalidInput(
            f"{path[:120]!r} is not a valid object key: Storage takes only A-Z a-z 0-9 and "
            f"_/!.*'() &$=@;:+,?- (artifacts.put encodes names into such keys), "
            f"with at most {MAX_SEGMENT_BYTES} bytes between slashes"
        )
    return path


class FileStore(Protocol):
    def put(self, path: str, data: bytes, content_type: str) -> None: ...

    def get(self, path: str) -> bytes: ...

    def head(self, path: str, max_bytes: int) -> bytes:
        """The first ``max_bytes`` of a file, without reading the rest (a viewer's preview)."""
        ...

    def signed_url(self, path: str, expires_in: int) -> str: ...

    def remove(self, paths: list[str]) -> None: ...

    def describe(self) -> str: ...


def close_files(store: FileStore) -> None:
    """Close a store that holds resources (Supabase Storage's HTTP client); local files hold
    none. Called by the direct transports, whose file store may be Supabase Storage."""
    close = getattr(store, "close", None)
    if callable(close):
        close()


class LocalFileStore:
    """Files under ``root/run-artifacts/``: for the embedded database and plain PostgreSQL."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve() / BUCKET

    def _path(self, path: str, *, new: bool = False) -> Path:
        full = (self.root / check_object_path(path, new=new)).resolve()
        if self.root not in full.parents:
            raise InvalidInput(f"{path!r} is not a safe relative path")
        return full

    def put(self, path: str, data: bytes, content_type: str) -> None:
        target = self._path(path, new=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, path: str) -> bytes:
        target = self._path(path)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"file {path} not found in {self.root}") from None

    def head(self, path: str, max_bytes: int) -> bytes:
        target = self._path(path)
        try:
            with target.open("rb") as f:
                return f.read(max(0, max_bytes))
        except FileNotFoundError:
            raise NotFound(f"file {path} not found in {self.root}") from None

    def signed_url(self, path: str, expires_in: int) -> str:
        target = self._path(path)
        if not target.exists():
            raise NotFound(f"file {path} not found in {self.root}")
        return target.as_uri()

    def remove(self, paths: list[str]) -> None:
        for p in paths:
            self._path(p).unlink(missing_ok=True)

    def describe(self) -> str:
        return str(self.root)

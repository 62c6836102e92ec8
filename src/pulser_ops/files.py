"""Where artifact files live: Supabase Storage, or a local directory.

Files always sit under ``<run id>/`` in the ``run-artifacts`` bucket
(``<run id>/<attempt>/<name>``), so the Storage policies that mirror the runs' RLS apply to
them. Without Supabase (a direct or embedded database) the same layout is kept under a local
directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

from .errors import InvalidInput, NotFound

BUCKET = "run-artifacts"


def check_object_path(path: str) -> str:
    """Refuse anything that could escape the run's folder (the SQL checks the same rule)."""
    parts = path.split("/")
    if (
        not path
        or len(path) > 300
        or path.startswith("/")
        or "\\" in path
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(c) < 32 or ord(c) == 127 for c in path)
    ):
        raise InvalidInput(f"{path!r} is not a safe relative path")
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

    def _path(self, path: str) -> Path:
        full = (self.root / check_object_path(path)).resolve()
        if self.root not in full.parents:
            raise InvalidInput(f"{path!r} is not a safe relative path")
        return full

    def put(self, path: str, data: bytes, content_type: str) -> None:
        target = self._path(path)
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

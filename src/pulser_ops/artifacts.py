"""How an artifact is stored: small text inline in the row, everything else as a file.

Shared by the sync and async clients so both decide identically.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from . import calls
from . import models as m
from .errors import InvalidInput
from .files import BUCKET, check_artifact_name, storage_key

#: Text up to this many UTF-8 bytes is stored inline in ``artifacts.inline_text``.
INLINE_LIMIT = 65_536


@dataclass(frozen=True)
class Upload:
    path: str
    data: bytes
    content_type: str


@dataclass(frozen=True)
class ArtifactPlan:
    upload: Upload | None
    call: calls.Call[m.Artifact]


def plan(
    run_id: UUID | str,
    name: str,
    data: str | bytes | Path,
    *,
    kind: str | None = None,
    content_type: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    attempt: int | None = None,
    inline: bool | None = None,
) -> ArtifactPlan:
    check_artifact_name(name)
    if isinstance(data, Path):
        try:
            data = data.read_bytes()
        except OSError as e:
            raise InvalidInput(f"cannot read {data!s}: {e.strerror}") from None
    if not isinstance(data, str | bytes):
        raise InvalidInput(f"artifact data must be str, bytes or Path, not {type(data).__name__}")
    guessed = mimetypes.guess_type(name)[0]
    if isinstance(data, str):
        raw = data.encode()
        ctype = (
            content_type
            or (f"{guessed}; charset=utf-8" if guessed and guessed.startswith("text/") else guessed)
            or "text/plain; charset=utf-8"
        )
        # Text with NUL is a file: PostgreSQL text cannot hold it.
        fits = len(raw) <= INLINE_LIMIT and "\x00" not in data
        as_inline = inline if inline is not None else fits
        if as_inline and len(raw) > INLINE_LIMIT:
            raise InvalidInput(
                f"inline artifact text is {len(raw)} bytes; "
                f"the inline limit is {INLINE_LIMIT} bytes"
            )
        if as_inline and "\x00" in data:
            raise InvalidInput(
                "text with a NUL character cannot be stored inline; store it as a file"
            )
    else:
        raw = data
        ctype = content_type or guessed or "application/octet-stream"
        as_inline = False
        if inline:
            raise InvalidInput("bytes are stored as files; pass text to store inline")
    digest = hashlib.sha256(raw).hexdigest()
    the_kind = kind or ("text" if isinstance(data, str) else "file")
    if as_inline:
        assert isinstance(data, str)
        return ArtifactPlan(
            None,
            calls.put_artifact(
                run_id,
                name,
                kind=the_kind,
                content_type=ctype,
                inline_text=data,
                size_bytes=len(raw),
                sha256=digest,
                metadata=metadata,
                attempt=attempt,
            ),
        )
    # Each attempt keeps its own files (the SQL checks the same layout).
    path = f"{calls._uuid(run_id, 'run_id')}/{attempt or 0}/{storage_key(name)}"
    return ArtifactPlan(
        Upload(path, raw, ctype),
        calls.put_artifact(
            run_id,
            name,
            kind=the_kind,
            content_type=ctype,
            storage_path=path,
            size_bytes=len(raw),
            sha256=digest,
            metadata=metadata,
            attempt=attempt,
        ),
    )


def inline_bytes(artifact: m.Artifact) -> bytes | None:
    return artifact.inline_text.encode() if artifact.inline_text is not None else None


__all__ = ["BUCKET", "INLINE_LIMIT", "ArtifactPlan", "Upload", "inline_bytes", "plan"]

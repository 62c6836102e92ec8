"""Ids in URLs: a malformed one is a page that does not exist (404), not a server error."""

from __future__ import annotations

from uuid import UUID

from ..errors import NotFound


def uuid_or_404(value: str, what: str = "run") -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise NotFound(f"no {what} {value!r}") from None

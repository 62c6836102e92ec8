"""Turn what an operator types into typed values, raising ``InvalidInput`` on anything wrong.

Why ``InvalidInput`` (not ``typer.BadParameter``): every bad input, whether caught here or by
the control plane, then reaches the operator the same way, as one ``error:`` line on stderr.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..models import LANES, LaneId, RunStatus
from ..templates_file import TOO_DEEP, parse_document

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(text: str, *, what: str = "duration") -> timedelta:
    """``90s``, ``15m``, ``1h``, ``7d``, ``2w``."""
    match = _DURATION.match(text)
    if not match:
        raise InvalidInput(f"{what}: expected a duration like 30m, 1h or 7d (got {text!r})")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])


def timestamp(text: str, *, what: str = "time") -> datetime:
    """An ISO 8601 timestamp; one without a zone is taken as UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{what}: not an ISO 8601 timestamp ({text!r})") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def since(text: str) -> datetime:
    """``--since``: a duration back from now (``1h``) or an absolute timestamp."""
    if _DURATION.match(text):
        return datetime.now(UTC) - duration(text, what="--since")
    return timestamp(text, what="--since")


def lane(text: str) -> LaneId:
    value = text.strip().upper()
    for known in LANES:
        if value == known:
            return known
    raise InvalidInput(f"unknown lane {text!r} (lanes are {', '.join(LANES)})")


def lanes(values: list[str] | None) -> list[LaneId] | None:
    if not values:
        return None
    return [lane(v) for item in values for v in item.split(",") if v.strip()]


def statuses(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = []
    for item in values:
        for v in (s.strip().lower() for s in item.split(",")):
            if not v:
                continue
            if v not in {s.value for s in RunStatus}:
                known = ", ".join(s.value for s in RunStatus)
                raise InvalidInput(f"unknown status {v!r} (statuses are {known})")
            out.append(v)
    return out


def param_value(raw: str) -> Any:
    """JSON when it parses (``3``, ``true``, ``[1,2]``, ``"x"``), else the string itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw
    except RecursionError:
        raise InvalidInput(f"--param: the value is {TOO_DEEP}") from None


def params(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--param: expected key=value (got {pair!r})")
        out[key.strip()] = param_value(raw)
    return out


def _why(e: OSError | UnicodeError) -> str:
    """Why a file cannot be read or written, as --config words it: "No such file or directory"."""
    if isinstance(e, OSError):
        return e.strerror or str(e)
    if isinstance(e, UnicodeEncodeError):  # a surrogate no file system encoding can hold
        return "not a usable file name"
    return "not UTF-8 text"


def load_document(path: Path, *, what: str) -> Any:
    """A JSON or YAML file (by extension; YAML also reads JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as e:
        raise InvalidInput(f"{what} {path}: cannot read it ({_why(e)})") from None
    return parse_document(text, f"{what} {path}", json_only=path.suffix.lower() == ".json")


def write_text(path: Path, text: str, *, what: str) -> None:
    """Write a file the operator named; one ``InvalidInput`` line when it cannot be written."""
    try:
        path.write_text(text, encoding="utf-8")
    except (OSError, UnicodeError) as e:
        raise InvalidInput(f"{what} {path}: cannot write it ({_why(e)})") from None


def params_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    doc = load_document(path, what="params file")
    if not isinstance(doc, dict):
        raise InvalidInput(f"params file {path}: expected an object of params at the top level")
    return doc

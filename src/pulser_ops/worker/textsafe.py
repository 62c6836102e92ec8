"""Text and JSON a step produced, made storable in PostgreSQL before the worker sends it.

Why: PostgreSQL ``text`` and ``jsonb`` cannot hold a NUL character, and UTF-8 cannot hold a
lone surrogate (Python strings can: ``surrogateescape`` decoding, a handler's own strings).
One such value in a log line made the database refuse the whole event batch it was in, the
clean lines of other runs included, or a run's whole completion. Step output is the user's, so
the worker does not refuse it: it replaces what cannot be stored, *visibly*, so a reader sees
that something was there:

- NUL becomes ``␀`` (U+2400 SYMBOL FOR NULL);
- a surrogate that is not half of a pair becomes ``�`` (U+FFFD); pairs are joined;
- in JSON values, a key or leaf that is not JSON (bytes, a set, NaN...) becomes text, and
  what is nested deeper than the SDK sends (``values.MAX_JSON_DEPTH``) becomes a note.

The raw bytes are not lost where they matter: a process step's log artifact keeps them as a
file (see ``steps.logstream.LogTail``), and an artifact saved as text that cannot be stored as
text is saved as bytes (``worker.context``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ..values import MAX_JSON_DEPTH

NUL_MARK = "\u2400"
BAD_MARK = "\ufffd"

_SURROGATE = re.compile("[\ud800-\udfff]")


def safe_text(text: str) -> str:
    """``text`` with NUL and unpaired surrogates replaced (the same object when clean)."""
    if storable(text):
        return text
    if _SURROGATE.search(text) is not None:
        # Join valid pairs ("\ud83d\ude00" is one emoji), then mark the halves left over.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        text = _SURROGATE.sub(BAD_MARK, text)
    return text.replace("\x00", NUL_MARK)


def safe_json(value: Any) -> Any:
    """A copy of ``value`` that ``jsonb`` accepts: strings made safe, keys made strings,
    anything else that is not JSON turned into text (nesting too deep for Python to walk
    becomes a note saying so). A value that is clean already is returned as it is."""
    return value if clean_json(value) is not None else _made_safe(value)


def clean_json(value: Any) -> str | None:
    """``value`` as JSON text when it is plain JSON that PostgreSQL stores as it is, else None.

    Why: almost every value is clean, and one ``json.dumps`` (in C) tells, where walking the
    value in Python cost more than the rest of a short run's bookkeeping. NUL comes out of the
    encoder escaped (``\\u0000``), a lone surrogate as itself (which UTF-8 cannot encode), and
    anything that is not JSON (bytes, a set, NaN) as an error."""
    if value is None or isinstance(value, bool | int):
        return _DUMPS(value)
    try:
        text = _DUMPS(value)
    except (TypeError, ValueError, RecursionError):
        return None
    if "\\u0000" in text or not storable(text):
        return None
    # Fewer brackets than the limit cannot nest too deep (two counts in C); more: look.
    if text.count("[") + text.count("{") >= MAX_JSON_DEPTH - 1 and _nests_too_deep(value):
        return None
    return text


def json_text(value: Any) -> str:
    """``safe_json(value)`` as JSON text."""
    text = clean_json(value)
    return text if text is not None else _DUMPS(_made_safe(value))


def _made_safe(value: Any) -> Any:
    try:
        return _safe(value, 0)
    except RecursionError:
        return _TOO_DEEP


_DUMPS = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
_TOO_DEEP = {"unserialisable": "nested too deeply"}


def _nests_too_deep(value: Any, depth: int = 0) -> bool:
    """True when ``value`` has a list or object at ``MAX_JSON_DEPTH - 1`` levels down (where
    ``_safe`` puts its note)."""
    if isinstance(value, Mapping):
        inner: Any = value.values()
    elif isinstance(value, list | tuple):
        inner = value
    else:
        return False
    if depth >= MAX_JSON_DEPTH - 1:
        return True
    return any(_nests_too_deep(v, depth + 1) for v in inner)


def _safe(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_JSON_DEPTH - 1:
        return _TOO_DEEP  # a dict itself, one level: the whole stays within the limit
    if isinstance(value, Mapping):
        return {safe_text(str(k)): _safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v, depth + 1) for v in value]
    if isinstance(value, bytes | bytearray):
        return safe_text(bytes(value).decode("utf-8", "replace"))
    return safe_text(str(value))


def storable(text: str) -> bool:
    """True when ``text`` can be stored as PostgreSQL text unchanged. The common cases cost a
    flag test (ASCII) or one UTF-8 encode in C; a regex over non-ASCII text is 20 times slower."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

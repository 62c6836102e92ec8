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
    becomes a note saying so)."""
    try:
        return _safe(value, 0)
    except RecursionError:
        return _TOO_DEEP


_TOO_DEEP = {"unserialisable": "nested too deeply"}


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

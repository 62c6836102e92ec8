"""A deliberately tiny ``{{ params.name }}`` renderer (no Jinja, no expressions).

Why not Jinja: params come from whoever enqueued the run, and a template language
with filters, attribute access and loops is a much larger attack surface than we
need. The only construct is ``{{ params.<identifier> }}``; each call site decides
how a value is *encoded* (whole argv element, URL-quoted, JSON value), so a param
is never pasted into a shell string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from pulser_ops.errors import TemplateError

#: One placeholder; the name group is a Python-like identifier.
PLACEHOLDER = re.compile(r"\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
#: Anything that looks like an attempt at templating (used to reject typos like
#: ``{{ param.x }}`` or ``{{ params.x | upper }}`` at parse time).
_BRACES = re.compile(r"\{\{.*?\}\}", re.DOTALL)
#: Start of a params placeholder anywhere, used to refuse templating in ``sh -c`` strings.
PARAMS_OPENER = re.compile(r"\{\{\s*params\.")


def check_template(text: str, *, allow_partial: bool) -> str | None:
    """Return a problem description for ``text`` or ``None`` if it is a valid template.

    ``allow_partial=False`` is for argv elements: a placeholder must then be the whole
    element, because splicing a value into a larger argv string is how injection starts.
    """
    for match in _BRACES.finditer(text):
        if not PLACEHOLDER.fullmatch(match.group(0)):
            return (
                f"invalid placeholder {match.group(0)!r} "
                "(only '{{ params.name }}' is supported)"
            )
    if not allow_partial and PLACEHOLDER.search(text) and not PLACEHOLDER.fullmatch(text.strip()):
        return (
            "a '{{ params.name }}' placeholder must be the whole argv element; "
            "values are never interpolated into larger strings"
        )
    return None


def to_text(value: Any) -> str:
    """Stringify a JSON param value the way argv, env and headers receive it."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _lookup(params: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in params:
        known = ", ".join(sorted(params)) or "none"
        raise TemplateError(f"{where}: unknown param '{name}' (known params: {known})", param=name)
    return params[name]


def whole_param(text: str) -> str | None:
    """The param name if ``text`` is exactly one placeholder (surrounding spaces allowed)."""
    match = PLACEHOLDER.fullmatch(text.strip())
    return match.group(1) if match else None


def interpolate(
    text: str,
    params: Mapping[str, Any],
    *,
    where: str,
    encode: Callable[[Any], str] = to_text,
) -> str:
    """Replace each placeholder in ``text`` by ``encode(value)``."""
    return PLACEHOLDER.sub(lambda m: encode(_lookup(params, m.group(1), where)), text)


def render_argv(argv: list[str], params: Mapping[str, Any], *, where: str) -> list[str]:
    """Render an argv list: a placeholder element becomes exactly one argv element."""
    out: list[str] = []
    for i, element in enumerate(argv):
        name = whole_param(element)
        if name is None:
            out.append(element)
        else:
            out.append(to_text(_lookup(params, name, f"{where}[{i}]")))
    return out


def url_encode(value: Any) -> str:
    """Percent-encode a value for any URL position (``/``, ``?``, ``&`` included)."""
    return quote(to_text(value), safe="")


def render_url(url: str, params: Mapping[str, Any], *, where: str) -> str:
    """Interpolate params into a URL, percent-encoding every value; a URL that is exactly one
    placeholder takes the param as the whole URL, which must then be http(s)."""
    name = whole_param(url)
    if name is not None:
        value = _lookup(params, name, where)
        if not isinstance(value, str) or not re.match(r"^https?://", value, re.IGNORECASE):
            raise TemplateError(f"{where}: params.{name} must be an http:// or https:// URL")
        if any(c in value for c in "\r\n\t "):
            raise TemplateError(f"{where}: params.{name} contains whitespace")
        return value
    return interpolate(url, params, where=where, encode=url_encode)


def render_header(value: str, params: Mapping[str, Any], *, where: str) -> str:
    """Interpolate params into a header value, refusing CR/LF (header injection)."""
    rendered = interpolate(value, params, where=where)
    if "\r" in rendered or "\n" in rendered:
        raise TemplateError(f"{where}: rendered header value contains a line break")
    return rendered


def render_json(value: Any, params: Mapping[str, Any], *, where: str) -> Any:
    """Render a JSON structure; a string that is exactly one placeholder takes the
    param's JSON value (keeping its type), other strings get text interpolation.

    The result is later serialised with ``json.dumps``, so values are JSON-encoded and
    can never break out of the string they sit in. Keys are not templated.
    """
    if isinstance(value, str):
        name = whole_param(value)
        if name is not None:
            return _lookup(params, name, where)
        return interpolate(value, params, where=where)
    if isinstance(value, list):
        return [render_json(v, params, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: render_json(v, params, where=f"{where}.{k}") for k, v in value.items()}
    return value


def iter_json_strings(value: Any) -> list[str]:
    """All string leaves of a JSON structure (for parse-time placeholder checks)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in iter_json_strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in iter_json_strings(v)]
    return []

"""Just enough Markdown for spec kits: numbered lines, headings, sections and list items.

Why not a Markdown library: the rules need *line numbers* (findings point at a line, GitHub
annotations too) and need to skip what is not prose, i.e. fenced code, HTML comments (Spec Kit's
templates keep their guidance in ``<!-- -->``), YAML front matter and inline code spans. A
masked copy of each line, with those parts blanked out, gives both with a few regular expressions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
#: ``*(mandatory)*``-style notes after a heading, and a trailing ``(...)`` group.
_ANNOTATION = re.compile(r"[*_]\([^)]*\)[*_]|\([^()]*\)\s*$")


@dataclass(frozen=True)
class Line:
    """One source line: ``text`` as written; ``visible`` with HTML comments and front matter
    blanked out (same length, so columns still match); ``prose`` with code blanked out too;
    ``in_code`` for lines of a fenced code block."""

    number: int
    text: str
    visible: str
    prose: str
    in_code: bool = False


@dataclass(frozen=True)
class Heading:
    level: int
    title: str
    line: int

    @property
    def key(self) -> str:
        return heading_key(self.title)


def heading_key(title: str) -> str:
    """How headings are compared: ``"Requirements *(mandatory)*"`` and ``"requirements"``
    match, as do ``"Phase 1: Setup (Shared Infrastructure)"`` and ``"Phase 1: Setup"``."""
    t = title
    for _ in range(3):  # a heading may carry more than one note
        t = _ANNOTATION.sub("", t).strip()
    t = re.sub(r"\*|`", "", t)
    t = re.sub(r"^[^\w\[]+|[^\w\])]+$", "", t)  # emoji and punctuation at either end
    return re.sub(r"\s+", " ", t).strip().lower()


def _blank(text: str) -> str:
    return re.sub(r"[^\s]", " ", text)


def scan(text: str) -> list[Line]:
    """Split ``text`` into :class:`Line` objects (numbered from 1)."""
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    lines: list[Line] = []
    fence: str | None = None
    in_comment = False
    front_matter = bool(raw) and raw[0].strip() == "---"
    for idx, original in enumerate(raw):
        number = idx + 1
        t = original.rstrip("\r")
        if front_matter:
            if number > 1 and t.strip() == "---":
                front_matter = False
            lines.append(Line(number, t, _blank(t), _blank(t)))
            continue
        if fence is not None:
            if re.match(rf"^\s{{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$", t):
                fence = None
            lines.append(Line(number, t, t, _blank(t), in_code=True))
            continue
        m = _FENCE.match(t)
        if m and not in_comment:
            fence = m.group(1)
            lines.append(Line(number, t, t, _blank(t), in_code=True))
            continue
        visible, in_comment = _strip_comments(t, in_comment)
        prose = _INLINE_CODE.sub(lambda mm: _blank(mm.group(0)), visible)
        lines.append(Line(number, t, visible, prose))
    return lines


def _strip_comments(t: str, in_comment: bool) -> tuple[str, bool]:
    out: list[str] = []
    i = 0
    while i < len(t):
        if in_comment:
            end = t.find("-->", i)
            if end < 0:
                out.append(_blank(t[i:]))
                return "".join(out), True
            out.append(_blank(t[i : end + 3]))
            i = end + 3
            in_comment = False
        else:
            start = t.find("<!--", i)
            if start < 0:
                out.append(t[i:])
                break
            out.append(t[i:start])
            i = start
            in_comment = True
    return "".join(out), in_comment


def headings(lines: Iterable[Line]) -> list[Heading]:
    found: list[Heading] = []
    for ln in lines:
        if ln.in_code:
            continue
        m = _HEADING.match(ln.prose)
        if m:
            # The title as written (inline code kept), for messages and keys.
            title = _HEADING.match(ln.text)
            found.append(Heading(len(m.group(1)), (title or m).group(2).strip(), ln.number))
    return found


def section(lines: list[Line], heading: Heading) -> list[Line]:
    """The lines under ``heading`` up to the next heading of the same or a higher level."""
    body: list[Line] = []
    for ln in lines[heading.line :]:
        m = None if ln.in_code else _HEADING.match(ln.prose)
        if m and len(m.group(1)) <= heading.level:
            break
        body.append(ln)
    return body


def find_heading(found: Iterable[Heading], key: str) -> Heading | None:
    return next((h for h in found if h.key == key), None)


def is_list_item(ln: Line) -> bool:
    """Does the line start a list item (``-``, ``*``, ``+`` or ``1.``) outside code?"""
    return not ln.in_code and bool(_LIST_ITEM.match(ln.prose))


def list_items(lines: Iterable[Line]) -> Iterator[Line]:
    return (ln for ln in lines if is_list_item(ln))


@dataclass(frozen=True)
class Bracketed:
    """A balanced ``[...]`` group (it may span lines): its text with whitespace collapsed, the
    line it starts on, and whether a ``(`` follows (then it is a link, not a placeholder)."""

    text: str
    line: int
    is_link: bool


def bracketed(lines: Iterable[Line], *, prose_only: bool, max_chars: int = 400) -> list[Bracketed]:
    """Outermost balanced bracket groups in the visible text (or the prose only)."""
    found: list[Bracketed] = []
    depth = 0
    start_line = 0
    buf: list[str] = []
    pending: Bracketed | None = None
    for ln in lines:
        src = ln.prose if prose_only else ln.visible
        for ch in src + "\n":
            if pending is not None:  # the character right after "]" decides: "(" is a link
                found.append(Bracketed(pending.text, pending.line, ch == "("))
                pending = None
            if ch == "[":
                if depth == 0:
                    start_line, buf = ln.number, []
                depth += 1
                buf.append(ch)
            elif ch == "]" and depth > 0:
                depth -= 1
                buf.append(ch)
                if depth == 0:
                    pending = Bracketed(re.sub(r"\s+", " ", "".join(buf)), start_line, False)
            elif depth > 0:
                buf.append(ch)
                if len(buf) > max_chars:  # an unbalanced "[" in prose: give up on it
                    depth, buf = 0, []
    if pending is not None:
        found.append(pending)
    return found


#: Spec Kit's marker for a value deferred to a person: ``TODO(FIELD_NAME): explanation``.
_TODO = re.compile(r"TODO\(([A-Za-z0-9_.-]+)\)(?::\s*(.*?))?(?=, \*\*|\s\||\s\*\*|\sTODO\(|$)")


def todo_markers(text: str) -> list[tuple[int, str, str]]:
    """``(column, FIELD, explanation)`` of each ``TODO(FIELD): explanation`` in ``text``."""
    return [(m.start(), m.group(1), (m.group(2) or "").rstrip(" .")) for m in _TODO.finditer(text)]


def plain(text: str) -> str:
    """``text`` without emphasis markers (``**Given** x`` → ``Given x``)."""
    return re.sub(r"[*_]{1,3}", "", text)

"""GitHub Spec Kit's own templates, vendored from the pinned ``specify-cli`` wheel.

The four templates in ``upstream/`` are byte-for-byte the files in
``specify_cli-<version>-py3-none-any.whl`` (``UPSTREAM.json`` records the version and every
sha256; tests/speckit/test_upstream.py checks them against the wheel itself). They are the
source of the structure: the sections a validated document must have are headings of these
templates, and the placeholder tokens a finished document must not keep are the tokens these
templates contain. Updating Spec Kit means replacing the files and UPSTREAM.json together.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any, Literal

from .markdown import bracketed, headings, scan

DocKind = Literal["constitution", "spec", "plan", "tasks"]
DOC_KINDS: tuple[DocKind, ...] = ("constitution", "spec", "plan", "tasks")

TEMPLATE_FILES: dict[DocKind, str] = {
    "constitution": "constitution-template.md",
    "spec": "spec-template.md",
    "plan": "plan-template.md",
    "tasks": "tasks-template.md",
}

#: Sections every document must have, as heading keys (see ``markdown.heading_key``). Each is
#: a heading of the pinned template; sections the templates mark optional ("include if ...",
#: "Fill ONLY if ...") and headings that are themselves placeholders are left out.
REQUIRED_SECTIONS: dict[DocKind, tuple[str, ...]] = {
    "constitution": ("core principles", "governance"),
    "spec": (
        "user scenarios & testing",
        "edge cases",
        "requirements",
        "functional requirements",
        "success criteria",
        "measurable outcomes",
        "assumptions",
    ),
    "plan": ("summary", "technical context", "constitution check", "project structure"),
    "tasks": (
        "phase 1: setup",
        "phase 2: foundational",
        "dependencies & execution order",
        "implementation strategy",
    ),
}

#: Bracketed text that is part of the format, not a placeholder: task markers and checkboxes.
FORMAT_TOKENS = re.compile(r"^(?:P|P\?|X|x| |US\d+|Story|ID|NEEDS CLARIFICATION:.*)$")


def _package() -> Any:
    return resources.files("pulser_ops.speckit").joinpath("upstream")


@functools.cache
def metadata() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_package().joinpath("UPSTREAM.json").read_text("utf-8"))
    return data


def version() -> str:
    """The ``specify-cli`` version the templates come from."""
    return str(metadata()["version"])


@functools.cache
def template(kind: DocKind) -> str:
    text: str = _package().joinpath(TEMPLATE_FILES[kind]).read_text("utf-8")
    return text


@functools.cache
def template_headings(kind: DocKind) -> tuple[str, ...]:
    return tuple(h.key for h in headings(scan(template(kind))))


def is_format_token(token: str) -> bool:
    """``[P]``, ``[US1]``, ``[X]``, ``[ID]``...: bracketed text that belongs to the format."""
    return bool(FORMAT_TOKENS.match(token[1:-1]))


@functools.cache
def placeholders() -> frozenset[str]:
    """Every bracketed slot of the pinned templates (``[PROJECT_NAME]``, ``[Brief Title]``,
    ``[initial state]``, ``[###-feature-name]``, ``[REMOVE IF UNUSED]``...), whitespace
    collapsed. A finished document keeps none of them, in prose or in code."""
    found: set[str] = set()
    for kind in DOC_KINDS:
        for b in bracketed(scan(template(kind)), prose_only=False):
            if not b.is_link and not is_format_token(b.text):
                found.add(b.text)
    return frozenset(found)

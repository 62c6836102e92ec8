"""Kits the spec-kit tests start from: generated in memory, then damaged on purpose."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pulser_ops.speckit.generate import GeneratedKit, generate
from pulser_ops.speckit.model import parse_params
from pulser_ops.speckit.report import Finding, Report, Source
from pulser_ops.speckit.source import MemoryTree, Opened
from pulser_ops.speckit.validate import validate

PARAMS: dict[str, Any] = {
    "name": "acme-notes",
    "description": "Shared notes for small teams: write a note, share it, find it again.",
    "date": "2026-11-30",
    "principles": [
        "Simplicity: start with the smallest thing that works",
        {"name": "Privacy", "description": "Notes are visible to their team only."},
    ],
    "features": [
        {
            "title": "Write a note",
            "description": "A member writes a note and keeps it.",
            "priority": "P1",
            "why": "Nothing else works without notes.",
            "independent_test": "Write a note, reload, the note is there.",
            "acceptance": [
                {"given": "an empty notebook", "when": "I save a note", "then": "it is listed"},
                "Given a saved note, When I edit it, Then the new text is kept",
            ],
            "requirements": ["System MUST store notes", "Users MUST be able to edit notes"],
            "success_criteria": ["A saved note is listed within 1 second"],
        },
        {
            "title": "Share a note",
            "priority": 2,
            "acceptance": ["Given a note, When I share it, Then my team sees it"],
            "success_criteria": ["90% of shares reach the team within 2 seconds"],
        },
    ],
}


def kit(layout: str = "plan", **overrides: Any) -> GeneratedKit:
    return generate(parse_params({**PARAMS, "layout": layout, **overrides}))


def tree_of(generated: GeneratedKit) -> dict[str, bytes]:
    return {d.path: d.content.encode() for d in generated.documents}


def check(files: dict[str, bytes]) -> Report:
    return validate(Opened(MemoryTree(dict(files))), Source(kind="generated", location="test"))


def key(f: Finding) -> tuple[str, str | None, int | None]:
    return (f.rule, f.file, f.line)


def new_findings(before: Report, after: Report) -> list[tuple[str, str | None, int | None]]:
    """Findings of ``after`` that ``before`` did not have (line numbers may shift, so they
    are compared by rule, file and message)."""
    seen = {(f.rule, f.file, f.message) for f in before.findings}
    return sorted(key(f) for f in after.findings if (f.rule, f.file, f.message) not in seen)


def edit(text: str, change: Callable[[list[str]], list[str]]) -> str:
    return "\n".join(change(text.split("\n")))

"""The Chat tab's command parser and completion: pure functions, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from pulser_ops.web.commands import (
    Command,
    CommandError,
    complete,
    help_text,
    parse,
    template_usage,
)

PARSED: list[tuple[str, Command]] = [
    ("run hello", Command("run", template="hello")),
    ("run hello name=ops lane=B", Command("run", template="hello", params={"name": "ops"}, lane="B")),
    ("/run hello name=ops lane=b", Command("run", template="hello", params={"name": "ops"}, lane="B")),
    ('run hello name="ops team" count=3 flag=true', Command(
        "run", template="hello", params={"name": "ops team", "count": 3, "flag": True})),
    ("run hello tags=[1,2] priority=-5", Command(
        "run", template="hello", params={"tags": [1, 2]}, priority=-5)),
    ('run hello name=\'{"x": 1}\'', Command("run", template="hello", params={"name": {"x": 1}})),
    ("RUN hello empty=", Command("run", template="hello", params={"empty": ""})),
    ("cancel 3f2a9c1b", Command("cancel", run="3f2a9c1b")),
    ("cancel #2 it is stuck", Command("cancel", run="#2", reason="it is stuck")),
    ("retry 3F2A9C1B-0000", Command("retry", run="3f2a9c1b-0000")),
    ("retry #1 lane=C", Command("retry", run="#1", lane="C")),
    ("status", Command("status")),
    ("status #3", Command("status", run="#3")),
    ("logs #1", Command("logs", run="#1", lines=20)),
    ("logs abcd 50", Command("logs", run="abcd", lines=50)),
    ("templates", Command("templates")),
    ("help", Command("help")),
    ("help run", Command("help", topic="run")),
    ("  help   /cancel ", Command("help", topic="cancel")),
]  # fmt: skip

REFUSED: list[tuple[str, str]] = [
    ("", "type a command"),
    ("   ", "type a command"),
    ("deploy prod", "unknown command 'deploy'"),
    ("run", "run which template?"),
    ("run hello name", "expected key=value, got 'name'"),
    ("run hello lane=E", "lane must be one of A, B, C, D"),
    ("run hello priority=high", "priority must be a whole number"),
    ("run hello priority=101", "priority must be a whole number"),
    ("run hello a=1 a=2", "a is given twice"),
    ("run hello 9x=1", "'9x' is not a param name"),
    ('run hello name="unclosed', "close your quotes"),
    ("cancel", "cancel: which run?"),
    ("cancel x", "'x' is not a run"),
    ("retry #1 count=2", "retry takes only lane="),
    ("status #1 #2", "status takes at most one run"),
    ("logs #1 many", "logs <run> [lines]"),
    ("logs #1 0", "lines: 1 to 200"),
    ("templates all", "templates takes nothing"),
    ("help deploy", "no command 'deploy'"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "want"), PARSED)
def test_parse(text: str, want: Command) -> None:
    assert parse(text) == want


@pytest.mark.parametrize(("text", "why"), REFUSED)
def test_refused_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(CommandError) as e:
        parse(text)
    assert why in str(e.value)


TEMPLATES: dict[str, dict[str, Any]] = {
    "hello": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "description": "who to greet"},
        "mood": {"type": "string", "enum": ["calm", "loud"]},
        "shout": {"type": "boolean"}}},
    "build-report": {"type": "object", "properties": {"items": {"type": "integer"}}},
}  # fmt: skip
RUNS = [("3f2a9c1b", "hello · succeeded"), ("7d0e11aa", "hello · running")]

COMPLETIONS: list[tuple[str, list[str]]] = [
    ("", ["run ", "cancel ", "retry ", "status ", "logs ", "templates ", "help "]),
    ("r", ["run ", "retry "]),
    ("run ", ["run build-report ", "run hello "]),
    ("run he", ["run hello "]),
    ("run hello ", ["run hello name=", "run hello mood=", "run hello shout=", "run hello lane=",
                    "run hello priority="]),
    ("run hello n", ["run hello name="]),
    ("run hello name=ops ", ["run hello name=ops mood=", "run hello name=ops shout=",
                             "run hello name=ops lane=", "run hello name=ops priority="]),
    ("run hello mood=", ["run hello mood=calm ", "run hello mood=loud "]),
    ("run hello mood=l", ["run hello mood=loud "]),
    ("run hello shout=t", ["run hello shout=true "]),
    ("run hello lane=", ["run hello lane=A ", "run hello lane=B ", "run hello lane=C ",
                         "run hello lane=D "]),
    ("run nope ", []),
    ("cancel ", ["cancel 7d0e11aa ", "cancel 3f2a9c1b "]),
    ("logs 3f", ["logs 3f2a9c1b "]),
    ("help c", ["help cancel "]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "want"), COMPLETIONS)
def test_completion(text: str, want: list[str]) -> None:
    assert [s.text for s in complete(text, TEMPLATES, RUNS)] == want


def test_completion_says_what_each_param_is() -> None:
    [name] = [s for s in complete("run hello n", TEMPLATES) if s.label == "name="]
    assert name.detail == "string, required — who to greet"


def test_help_and_usage_texts() -> None:
    assert "run <template> [key=value ...]" in help_text(None, TEMPLATES)
    assert "templates: build-report, hello" in help_text(None, TEMPLATES)
    assert help_text("logs", {}).startswith("logs <run> [lines]")
    assert template_usage("hello", TEMPLATES["hello"]) == (
        "run hello name=<string> [mood=<string>] [shout=<boolean>]")

"""Spec validation: strict models, errors that name the offending field."""

from __future__ import annotations

from typing import Any

import pytest

from pulser_ops.steps import (
    DockerStep,
    HttpStep,
    McpStep,
    PythonStep,
    ShellStep,
    StepSpecError,
    parse_steps,
)


def issues_of(raw: Any) -> list[tuple[str, str]]:
    with pytest.raises(StepSpecError) as info:
        parse_steps(raw)
    assert info.value.code == "invalid_step_spec"
    assert info.value.retryable is False
    return info.value.issues


def test_parses_every_kind_with_default_names() -> None:
    specs = parse_steps(
        [
            {"kind": "shell", "command": ["echo", "{{ params.who }}"]},
            {"kind": "http", "url": "https://example.com/{{ params.id }}", "method": "POST"},
            {"kind": "python", "handler": "do_it", "name": "custom"},
            {"kind": "mcp", "command": ["python", "srv.py"], "tool": "echo"},
            {"kind": "docker", "image": "alpine:3.20", "command": ["echo", "hi"]},
        ]
    )
    assert [type(s) for s in specs] == [ShellStep, HttpStep, PythonStep, McpStep, DockerStep]
    assert [s.name for s in specs] == ["shell-0", "http-1", "custom", "mcp-3", "docker-4"]
    shell = specs[0]
    assert isinstance(shell, ShellStep)
    assert shell.ok_exit_codes == [0]
    http = specs[1]
    assert isinstance(http, HttpStep)
    assert http.expected_status is None and http.timeout_seconds == 30.0


def test_missing_required_field_is_named() -> None:
    raw = [
        {"kind": "shell", "command": "true"},
        {"kind": "http", "url": "http://x"},
        {"kind": "shell"},
    ]
    assert issues_of(raw) == [("steps[2].command", "field required")]


def test_all_bad_steps_are_reported_at_once() -> None:
    raw = [{"kind": "mcp", "command": ["x"]}, {"kind": "python"}]
    assert issues_of(raw) == [
        ("steps[0].tool", "field required"),
        ("steps[1].handler", "field required"),
    ]


@pytest.mark.parametrize(
    ("step", "field", "fragment"),
    [
        ({"command": "x"}, "steps[0].kind", "field required"),
        ({"kind": "perl", "command": "x"}, "steps[0].kind", "must be one of shell, http"),
        ({"kind": "shell", "command": "x", "timeout_secs": 5}, "steps[0].timeout_secs", "unknown"),
        ({"kind": "shell", "command": "x", "timeout_seconds": "5"}, "steps[0].timeout_seconds", ""),
        ({"kind": "shell", "command": "x", "timeout_seconds": 0}, "steps[0].timeout_seconds", ""),
        ({"kind": "shell", "command": 5}, "steps[0].command", "valid string or"),
        ({"kind": "shell", "command": []}, "steps[0].command", "must not be empty"),
        ({"kind": "shell", "command": ["ls", 3]}, "steps[0].command[1]", "valid string"),
        ({"kind": "shell", "command": "x", "name": "../etc"}, "steps[0].name", "pattern"),
        ({"kind": "shell", "command": "x", "env": {"1X": "y"}}, "steps[0].env", "variable name"),
        ({"kind": "http", "url": "ftp://host/x"}, "steps[0].url", "http:// or https://"),
        ({"kind": "http", "url": "http://h", "method": "BREW"}, "steps[0].method", ""),
        (
            {"kind": "http", "url": "http://h", "save_response_as": "../x"},
            "steps[0].save_response_as",
            "..",
        ),
        ({"kind": "docker", "image": "bad image"}, "steps[0].image", "pattern"),
    ],
)
def test_field_errors_point_at_the_field(step: dict[str, Any], field: str, fragment: str) -> None:
    issues = issues_of([step])
    assert issues[0][0] == field, issues
    assert fragment in issues[0][1]
    assert str(StepSpecError(issues)).startswith(f"{field}: ")


def test_non_object_and_non_array() -> None:
    assert issues_of([3]) == [("steps[0]", "must be an object")]
    assert issues_of({"kind": "shell"}) == [("steps", "must be a JSON array")]


def test_duplicate_names_are_rejected() -> None:
    raw = [
        {"kind": "shell", "command": "true", "name": "a"},
        {"kind": "shell", "command": "true", "name": "a"},
    ]
    assert issues_of(raw) == [("steps[1].name", "duplicate step name 'a' (see steps[0])")]


def test_placeholder_inside_a_larger_argv_element_is_rejected() -> None:
    issues = issues_of([{"kind": "shell", "command": ["echo", "--name={{ params.x }}"]}])
    assert issues[0][0] == "steps[0].command[1]"
    assert "whole argv element" in issues[0][1]


def test_placeholder_in_sh_c_string_is_rejected() -> None:
    issues = issues_of([{"kind": "shell", "command": "echo {{ params.x }}"}])
    assert issues[0][0] == "steps[0].command"
    assert "PULSER_PARAM_" in issues[0][1]


@pytest.mark.parametrize("bad", ["{{ param.x }}", "{{ params.x | upper }}", "{{params}}"])
def test_malformed_placeholders_are_rejected(bad: str) -> None:
    issues = issues_of([{"kind": "http", "url": f"http://h/{bad}"}])
    assert issues[0][0] == "steps[0].url"
    assert "invalid placeholder" in issues[0][1]


def test_placeholders_in_json_body_and_mcp_arguments_are_checked() -> None:
    issues = issues_of(
        [
            {"kind": "http", "url": "http://h", "body": {"a": ["{{ params.ok }}", "{{ bad }}"]}},
            {"kind": "mcp", "command": ["x"], "tool": "t", "arguments": {"n": "{{ nope.y }}"}},
        ]
    )
    assert [f for f, _ in issues] == ["steps[0].body", "steps[1].arguments"]

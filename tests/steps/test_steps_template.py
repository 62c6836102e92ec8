"""The ``{{ params.x }}`` renderer: encodings per call site and unknown-param errors."""

from __future__ import annotations

import json

import pytest

from pulser_ops.steps import TemplateError
from pulser_ops.steps.environment import param_env, param_env_name
from pulser_ops.steps.template import (
    render_argv,
    render_header,
    render_json,
    render_url,
    to_text,
)

PARAMS = {"name": "a b/c?d=1&e", "n": 7, "flag": True, "obj": {"k": [1, 2]}, "none": None}


def test_argv_placeholder_becomes_exactly_one_element() -> None:
    argv = render_argv(["echo", "{{ params.name }}", "{{params.n}}", "plain"], PARAMS, where="c")
    assert argv == ["echo", "a b/c?d=1&e", "7", "plain"]


def test_text_conversion_of_json_values() -> None:
    assert [to_text(PARAMS[k]) for k in ("n", "flag", "obj", "none")] == [
        "7",
        "true",
        '{"k":[1,2]}',
        "",
    ]


def test_unknown_param_names_param_and_location() -> None:
    with pytest.raises(TemplateError) as info:
        render_argv(["x", "{{ params.missing }}"], PARAMS, where="step 's' command")
    assert info.value.param == "missing"
    assert info.value.code == "template_error"
    assert "step 's' command[1]: unknown param 'missing'" in str(info.value)
    assert "known params: flag, n, name, none, obj" in str(info.value)


def test_url_values_are_percent_encoded() -> None:
    url = render_url("http://h/items/{{ params.name }}?q={{ params.name }}", PARAMS, where="u")
    assert url == "http://h/items/a%20b%2Fc%3Fd%3D1%26e?q=a%20b%2Fc%3Fd%3D1%26e"


def test_json_body_keeps_types_and_escapes_strings() -> None:
    evil = '", "admin": true, "x": "'
    body = render_json(
        {"n": "{{ params.n }}", "o": "{{ params.obj }}", "s": "hi {{ params.evil }}"},
        {**PARAMS, "evil": evil},
        where="b",
    )
    assert body == {"n": 7, "o": {"k": [1, 2]}, "s": f"hi {evil}"}
    decoded = json.loads(json.dumps(body))
    assert "admin" not in decoded and decoded["s"].endswith(evil)


def test_header_line_breaks_are_refused() -> None:
    assert render_header("Bearer {{ params.t }}", {"t": "abc"}, where="h") == "Bearer abc"
    with pytest.raises(TemplateError):
        render_header("{{ params.t }}", {"t": "x\r\nX-Admin: 1"}, where="h")


def test_param_env_names_and_json() -> None:
    env = param_env({"my-param": "v", "n": 3})
    assert param_env_name("my-param") == "PULSER_PARAM_MY_PARAM"
    assert env["PULSER_PARAM_MY_PARAM"] == "v" and env["PULSER_PARAM_N"] == "3"
    assert json.loads(env["PULSER_PARAMS_JSON"]) == {"my-param": "v", "n": 3}

"""Pydantic models for the step objects in ``run_templates.steps``.

Validation is strict (no coercion, unknown keys rejected) because a template is code:
a typo such as ``timeout_secs`` must fail loudly when the template is loaded, not be
silently ignored while a step runs forever. Placeholders are checked here too, so
``{{ param.x }}`` typos and argv splicing are rejected before any run starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from pulser_ops.errors import StepSpecError
from pulser_ops.steps.template import (
    PARAMS_OPENER,
    check_template,
    iter_json_strings,
    whole_param,
)

STEP_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
STEP_KINDS: tuple[str, ...] = ("shell", "http", "python", "mcp", "docker")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HTTP_SCHEME = re.compile(r"^https?://", re.IGNORECASE)

Seconds = Annotated[float, Field(gt=0, le=7 * 24 * 3600)]


def _check_argv(argv: list[str]) -> list[str]:
    if not argv:
        raise ValueError("argv list must not be empty")
    for i, element in enumerate(argv):
        problem = check_template(element, allow_partial=False)
        if problem:
            raise ValueError(f"[{i}] {problem}")
    return argv


def _check_env(env: dict[str, str]) -> dict[str, str]:
    for key, value in env.items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"invalid environment variable name {key!r}")
        problem = check_template(value, allow_partial=True)
        if problem:
            raise ValueError(f"{key}: {problem}")
    return env


def _check_command(command: str | list[str]) -> str | list[str]:
    if isinstance(command, list):
        return _check_argv(command)
    if not command.strip():
        raise ValueError("command must not be empty")
    if PARAMS_OPENER.search(command):
        raise ValueError(
            "params are not interpolated into shell strings; read $PULSER_PARAM_<NAME> "
            "in the script or use an argv list with a whole-element '{{ params.name }}'"
        )
    return command


class _StepBase(BaseModel):
    """Fields shared by every kind; ``name`` is filled in by :func:`parse_steps`."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(pattern=STEP_NAME_PATTERN)
    timeout_seconds: Seconds | None = None


class _ProcessStep(_StepBase):
    """Steps that own a child process and stop it with SIGTERM, then SIGKILL."""

    env: dict[str, str] = Field(default_factory=dict)
    kill_grace_seconds: Annotated[float, Field(ge=0, le=600)] = 10.0

    @field_validator("env")
    @classmethod
    def _env_ok(cls, env: dict[str, str]) -> dict[str, str]:
        return _check_env(env)


class ShellStep(_ProcessStep):
    """Run an argv list directly, or a string with ``/bin/sh -c`` (params via env only)."""

    kind: Literal["shell"]
    command: str | list[str]
    cwd: str | None = None
    ok_exit_codes: list[int] = Field(default_factory=lambda: [0], min_length=1)

    @field_validator("command")
    @classmethod
    def _command_ok(cls, command: str | list[str]) -> str | list[str]:
        return _check_command(command)


class DockerStep(_ProcessStep):
    """``docker run --rm <image> [command]``; needs a reachable Docker engine."""

    kind: Literal["docker"]
    image: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
    command: str | list[str] | None = None
    ok_exit_codes: list[int] = Field(default_factory=lambda: [0], min_length=1)

    @field_validator("command")
    @classmethod
    def _command_ok(cls, command: str | list[str] | None) -> str | list[str] | None:
        return None if command is None else _check_command(command)


class HttpStep(_StepBase):
    """One HTTP request; params are URL-encoded in the URL and JSON-encoded in bodies."""

    kind: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    #: A string is sent as text; any other JSON value is sent as ``application/json``.
    body: JsonValue = None
    #: ``None`` means any 2xx.
    expected_status: int | list[int] | None = None
    timeout_seconds: Seconds | None = 30.0
    follow_redirects: bool = False
    save_response_as: str | None = Field(default=None, min_length=1, max_length=255)
    max_response_bytes: Annotated[int, Field(gt=0, le=64 * 1024 * 1024)] = 1024 * 1024

    @field_validator("url")
    @classmethod
    def _url_ok(cls, url: str) -> str:
        # A URL that is exactly one placeholder takes the whole param (checked when rendered).
        if whole_param(url) is None and not _HTTP_SCHEME.match(url):
            raise ValueError("url must start with http:// or https://")
        problem = check_template(url, allow_partial=True)
        if problem:
            raise ValueError(problem)
        return url

    @field_validator("headers")
    @classmethod
    def _headers_ok(cls, headers: dict[str, str]) -> dict[str, str]:
        for key, value in headers.items():
            problem = check_template(value, allow_partial=True)
            if problem:
                raise ValueError(f"{key}: {problem}")
        return headers

    @field_validator("body")
    @classmethod
    def _body_ok(cls, body: JsonValue) -> JsonValue:
        for text in iter_json_strings(body):
            problem = check_template(text, allow_partial=True)
            if problem:
                raise ValueError(problem)
        return body

    @field_validator("save_response_as")
    @classmethod
    def _artifact_name_ok(cls, name: str | None) -> str | None:
        if name is not None and (name.startswith("/") or ".." in name.split("/")):
            raise ValueError("artifact name must be a relative path without '..'")
        return name


class PythonStep(_StepBase):
    """Call a handler registered in the worker's :class:`HandlerRegistry`."""

    kind: Literal["python"]
    handler: str = Field(min_length=1, max_length=200)
    #: Extra static arguments handed to the handler as ``ctx.args`` (templated like bodies).
    args: dict[str, JsonValue] = Field(default_factory=dict)
    #: How long a cancelled/timed-out handler gets to notice before it is abandoned.
    kill_grace_seconds: Annotated[float, Field(ge=0, le=600)] = 10.0

    @field_validator("args")
    @classmethod
    def _args_ok(cls, args: dict[str, JsonValue]) -> dict[str, JsonValue]:
        for text in iter_json_strings(args):
            problem = check_template(text, allow_partial=True)
            if problem:
                raise ValueError(problem)
        return args


class McpStep(_ProcessStep):
    """Launch an MCP server over stdio and call one tool."""

    kind: Literal["mcp"]
    command: list[str]
    cwd: str | None = None
    tool: str = Field(min_length=1)
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    timeout_seconds: Seconds | None = 60.0

    @field_validator("command")
    @classmethod
    def _command_ok(cls, command: list[str]) -> list[str]:
        return _check_argv(command)

    @field_validator("arguments")
    @classmethod
    def _arguments_ok(cls, arguments: dict[str, JsonValue]) -> dict[str, JsonValue]:
        for text in iter_json_strings(arguments):
            problem = check_template(text, allow_partial=True)
            if problem:
                raise ValueError(problem)
        return arguments


StepSpec = Annotated[
    ShellStep | HttpStep | PythonStep | McpStep | DockerStep,
    Field(discriminator="kind"),
]
_STEP_ADAPTER: TypeAdapter[StepSpec] = TypeAdapter(StepSpec)


def _format_loc(prefix: str, loc: Sequence[int | str]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _format_msg(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "union_tag_invalid":
        return f"must be one of {', '.join(STEP_KINDS)}"
    msg = str(error.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]


def _issues(index: int, exc: ValidationError) -> list[tuple[str, str]]:
    issues: list[tuple[str, str]] = []
    for error in exc.errors():
        loc = list(error["loc"])
        if error["type"] == "union_tag_not_found":
            issues.append((f"steps[{index}].kind", "field required"))
            continue
        if error["type"] == "union_tag_invalid":
            loc = ["kind"]
        elif loc and loc[0] in STEP_KINDS:
            loc = loc[1:]  # drop the discriminator tag pydantic puts first
        field, msg = _format_loc(f"steps[{index}]", loc), _format_msg(error)
        moved = re.match(r"^((?:\[\d+\])+) (.*)$", msg, re.DOTALL)
        if moved:  # validators report list positions as a "[i] ..." prefix
            field, msg = field + moved.group(1), moved.group(2)
        issues.append((field, msg))
    return _merge_union_branches(_dedupe_union_noise(issues))


def _dedupe_union_noise(issues: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Collapse pydantic's per-branch errors for ``str | list[str]`` fields.

    Loc entries like ``command.str`` / ``command.list[str]`` are branch names, not
    fields; strip them so the message names the real field once.
    """
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, str]] = []
    for field, msg in issues:
        field = re.sub(r"\.(str|list\[str\]|int|list\[int\]|function-after\[[^\]]*\])", "", field)
        if (field, msg) not in seen:
            seen.add((field, msg))
            out.append((field, msg))
    return out


def _merge_union_branches(issues: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """For ``str | list[str]`` fields pydantic reports one error per branch.

    If one branch error points deeper (``command[1]``) it is the useful one; otherwise
    the branch messages are joined into a single "a or b" message for the field.
    """
    fields = [f for f, _ in issues]
    merged: dict[str, list[str]] = {}
    order: list[str] = []
    for field, msg in issues:
        deeper = any(other.startswith((field + "[", field + ".")) for other in fields)
        if deeper:
            continue
        if field not in merged:
            merged[field] = []
            order.append(field)
        merged[field].append(msg)
    return [(f, " or ".join(merged[f])) for f in order]


def parse_step(raw: Any, index: int = 0) -> StepSpec:
    """Validate one step object; see :func:`parse_steps`."""
    if not isinstance(raw, Mapping):
        raise StepSpecError([(f"steps[{index}]", "must be an object")])
    data = dict(raw)
    kind = data.get("kind")
    if "name" not in data and isinstance(kind, str):
        data["name"] = f"{kind}-{index}"
    try:
        return _STEP_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise StepSpecError(_issues(index, exc)) from None


def parse_steps(raw: Any) -> list[StepSpec]:
    """Validate a template's ``steps`` array, reporting every bad field.

    Raises :class:`StepSpecError` whose ``issues`` are ``(field, message)`` pairs such as
    ``("steps[2].command", "field required")``. Step names must be unique because they
    name the step's artifacts.
    """
    if not isinstance(raw, list):
        raise StepSpecError([("steps", "must be a JSON array")])
    issues: list[tuple[str, str]] = []
    specs: list[StepSpec] = []
    names: dict[str, int] = {}
    for index, item in enumerate(raw):
        try:
            spec = parse_step(item, index)
        except StepSpecError as exc:
            issues.extend(exc.issues)
            continue
        if spec.name in names:
            issues.append(
                (
                    f"steps[{index}].name",
                    f"duplicate step name {spec.name!r} (see steps[{names[spec.name]}])",
                )
            )
        names.setdefault(spec.name, index)
        specs.append(spec)
    if issues:
        raise StepSpecError(issues)
    return specs

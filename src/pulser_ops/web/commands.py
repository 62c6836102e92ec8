"""The Chat tab's commands: what an operator types, parsed, and completion as they type.

Pure Python (no I/O), so both are table-tested. Executing a command is ``pages/chat.py``'s job,
through the SDK, so the control plane checks every action as it would for any caller.

    run <template> [key=value ...] [lane=A-D] [priority=N]
    cancel <run> [reason ...]
    retry <run> [lane=A-D]
    status [<run>]
    logs <run> [lines]
    templates
    help [command]

``<run>``: a run id, the first characters of one, or ``#n`` (the session's n-th run). Values are
JSON when they parse (``count=3`` is a number, ``name=ops`` a string); quote values with spaces
(``name="ops team"``).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..cli.parsing import param_value
from ..models import LANES

#: Command: (usage, what it does).
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run <template> [key=value ...] [lane=A-D] [priority=N]",
            "enqueue a run of a template in this session"),
    "cancel": ("cancel <run> [reason ...]",
               "cancel a run (its worker stops at the next heartbeat)"),
    "retry": ("retry <run> [lane=A-D]", "re-run a run with the same params"),
    "status": ("status [<run>]", "the lanes and this session's runs, or one run"),
    "logs": ("logs <run> [lines]", "a run's last log lines (20 unless told)"),
    "templates": ("templates", "the templates you can run, with their params"),
    "help": ("help [command]", "this list"),
}  # fmt: skip
RUN_OPTIONS = ("lane", "priority")
_RUN_REF = re.compile(r"^(#\d{1,4}|[0-9a-fA-F-]{4,36})$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MAX_LOG_LINES = 200


class CommandError(Exception):
    """A command that cannot be run as typed: the answer says why and how to type it."""

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage

    def __str__(self) -> str:
        return f"{self.message}\nusage: {self.usage}" if self.usage else self.message


@dataclass(frozen=True)
class Command:
    name: str
    template: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    lane: str | None = None
    priority: int | None = None
    run: str | None = None
    reason: str | None = None
    lines: int = 20
    topic: str | None = None


def _usage(name: str) -> str:
    return COMMANDS[name][0]


def _lane(raw: str, name: str) -> str:
    lane = raw.strip().upper()
    if lane not in LANES:
        raise CommandError(f"lane must be one of {', '.join(LANES)} (got {raw!r})", _usage(name))
    return lane


def _run_ref(tokens: Sequence[str], name: str) -> str:
    if not tokens:
        raise CommandError(f"{name}: which run?", _usage(name))
    ref = tokens[0]
    if not _RUN_REF.match(ref):
        raise CommandError(
            f"{ref!r} is not a run: give its id, the first characters of it, or #n", _usage(name)
        )
    return ref.lower()


def _pairs(tokens: Sequence[str], name: str) -> list[tuple[str, str]]:
    out = []
    for tok in tokens:
        key, sep, raw = tok.partition("=")
        if not sep:
            raise CommandError(f"expected key=value, got {tok!r}", _usage(name))
        if not _KEY.match(key):
            raise CommandError(f"{key!r} is not a param name", _usage(name))
        out.append((key, raw))
    return out


def parse(text: str) -> Command:
    """A command as typed (``CommandError`` says what is wrong and the usage)."""
    try:
        tokens = shlex.split(text)
    except ValueError as e:
        raise CommandError(f"cannot read that: {e} (close your quotes)") from None
    if not tokens:
        raise CommandError("type a command; `help` lists them")
    name = tokens[0].lstrip("/").lower()
    args = tokens[1:]
    if name not in COMMANDS:
        raise CommandError(f"unknown command {tokens[0]!r}; `help` lists the commands")
    if name == "run":
        if not args:
            raise CommandError("run which template?", _usage(name))
        template, params = args[0], {}
        lane: str | None = None
        priority: int | None = None
        for key, raw in _pairs(args[1:], name):
            if key == "lane":
                lane = _lane(raw, name)
            elif key == "priority":
                if not re.fullmatch(r"-?\d{1,3}", raw) or not -100 <= int(raw) <= 100:
                    raise CommandError("priority must be a whole number from -100 to 100",
                                       _usage(name))  # fmt: skip
                priority = int(raw)
            elif key in params:
                raise CommandError(f"{key} is given twice", _usage(name))
            else:
                params[key] = param_value(raw)
        return Command(name, template=template, params=params, lane=lane, priority=priority)
    if name == "cancel":
        return Command(name, run=_run_ref(args, name), reason=" ".join(args[1:]) or None)
    if name == "retry":
        lane = None
        for key, raw in _pairs(args[1:], name):
            if key != "lane":
                raise CommandError(f"retry takes only lane= (got {key}=)", _usage(name))
            lane = _lane(raw, name)
        return Command(name, run=_run_ref(args, name), lane=lane)
    if name == "status":
        if len(args) > 1:
            raise CommandError("status takes at most one run", _usage(name))
        return Command(name, run=_run_ref(args, name) if args else None)
    if name == "logs":
        if len(args) > 2 or (len(args) == 2 and not args[1].isdigit()):
            raise CommandError("logs <run> [lines]", _usage(name))
        lines = int(args[1]) if len(args) == 2 else 20
        if not 1 <= lines <= MAX_LOG_LINES:
            raise CommandError(f"lines: 1 to {MAX_LOG_LINES}", _usage(name))
        return Command(name, run=_run_ref(args, name), lines=lines)
    if name == "templates":
        if args:
            raise CommandError("templates takes nothing", _usage(name))
        return Command(name)
    topic = args[0].lstrip("/").lower() if args else None
    if topic is not None and topic not in COMMANDS:
        raise CommandError(f"no command {args[0]!r}; `help` lists them")
    return Command("help", topic=topic)


# --- completion ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    """``text``: the whole message box after picking it; ``label`` what the list shows."""

    text: str
    label: str
    detail: str = ""


def _props(schema: Mapping[str, Any]) -> dict[str, Any]:
    props = schema.get("properties")
    return props if isinstance(props, dict) else {}


def _values_of(prop: Mapping[str, Any]) -> list[str]:
    enum = prop.get("enum")
    if isinstance(enum, list):
        return [v if isinstance(v, str) else param_value_text(v) for v in enum]
    if prop.get("type") == "boolean":
        return ["true", "false"]
    return []


def param_value_text(value: Any) -> str:
    return json.dumps(value)


def complete(
    text: str,
    templates: Mapping[str, Mapping[str, Any]],
    runs: Sequence[tuple[str, str]] = (),
    limit: int = 12,
) -> list[Suggestion]:
    """What may come next at the end of ``text``: command names, template names, a template's
    params (``name=``) and their values (enums, booleans, lanes), or the session's runs.
    ``templates``: name → params schema; ``runs``: (short id, label), newest last."""
    head, _, last = text.rpartition(" ")
    words = head.split()
    prefix = (head + " ") if head else ""
    out: list[Suggestion] = []

    def offer(word: str, label: str, detail: str = "", final: bool = True) -> None:
        out.append(Suggestion(prefix + word + (" " if final else ""), label, detail))

    if not words:
        for name, (usage, what) in COMMANDS.items():
            if name.startswith(last.lstrip("/").lower()):
                offer(name, usage, what)
        return out[:limit]
    command = words[0].lstrip("/").lower()
    if command == "run" and len(words) == 1:
        for name in sorted(templates):
            if name.startswith(last):
                n = len(_props(templates[name]))
                offer(name, name, f"{n} param{'s' if n != 1 else ''}")
        return out[:limit]
    if command == "run" and words[1] in templates:
        props = _props(templates[words[1]])
        required = templates[words[1]].get("required")
        need = set(required) if isinstance(required, list) else set()
        used = {w.split("=", 1)[0] for w in words[2:]}
        key, eq, partial = last.partition("=")
        if eq:
            values = list(LANES) if key == "lane" else _values_of(props.get(key) or {})
            for value in values:
                if value.startswith(partial):
                    offer(f"{key}={shlex.quote(value)}", value, key)
            return out[:limit]
        for name, prop in props.items():
            if name not in used and name.startswith(last):
                kind = prop.get("type", "any") if isinstance(prop, dict) else "any"
                detail = f"{kind}{', required' if name in need else ''}"
                if isinstance(prop, dict) and prop.get("description"):
                    detail += f" — {prop['description']}"
                offer(f"{name}=", f"{name}=", detail, final=False)
        for option, detail in (("lane", "A-D"), ("priority", "-100..100")):
            if option not in used and option not in props and option.startswith(last):
                offer(f"{option}=", f"{option}=", detail, final=False)
        return out[:limit]
    if command in ("cancel", "retry", "status", "logs") and len(words) == 1:
        for short, label in reversed(runs):
            if short.startswith(last.lower()):
                offer(short, short, label)
        return out[:limit]
    if command == "help" and len(words) == 1:
        for name in COMMANDS:
            if name.startswith(last):
                offer(name, name, COMMANDS[name][1])
    return out[:limit]


def help_text(topic: str | None, templates: Mapping[str, Mapping[str, Any]]) -> str:
    if topic is not None:
        usage, what = COMMANDS[topic]
        return f"{usage}\n  {what}"
    lines = [f"{usage:<56} {what}" for usage, what in COMMANDS.values()]
    lines.append("")
    lines.append("<run>: a run id, its first characters, or #n (this session's n-th run).")
    if templates:
        lines.append("templates: " + ", ".join(sorted(templates)))
    return "\n".join(lines)


def template_usage(name: str, schema: Mapping[str, Any]) -> str:
    """``run hello name=<string> [count=<integer>]``: how to run a template."""
    required = schema.get("required")
    need = set(required) if isinstance(required, list) else set()
    parts = [f"run {name}"]
    for key, prop in _props(schema).items():
        kind = prop.get("type", "value") if isinstance(prop, dict) else "value"
        parts.append(f"{key}=<{kind}>" if key in need else f"[{key}=<{kind}>]")
    return " ".join(parts)

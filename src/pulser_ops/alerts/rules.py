"""The alert rules: defaults that work with no file, or a YAML file that changes them.

The rules are evaluated by the control plane (``evaluate_alerts``); this module only reads
them, fills in the defaults and checks them, so that a mistake in the file is reported as the
file's mistake, with its line (``alerts.yml line 7: failure_rate.threshold: ...``), before
anything runs.

    reminder: 1h                 # a firing incident is announced again this often (0: never)
    interval: 30s                # how often `pulser-ops alerts` evaluates
    board_url: https://ops.example.com   # links in notifications (optional)
    notify:                      # apprise URLs; ${VAR} is read from the environment
      - ${SLACK_WEBHOOK_URL}
      - url: mailto://user:pass@example.com?to=oncall@example.com
        severity: critical       # only incidents at least this severe
        rules: [stuck_runs, dead_workers]
    rules:
      stuck_runs:   {after: 1m}
      dead_workers: {heartbeat_multiple: 3, forget_after: 1h}
      queue_age:    {threshold: 15m, lanes: {A: 2m}}
      failure_rate: {window: 15m, threshold: 0.5, min_runs: 10}

Durations are seconds, or a number with ``s``, ``m``, ``h`` or ``d``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ..errors import AlertRulesError
from ..models import AlertSeverity, LaneId
from ..templates_file import TOO_DEEP

SEVERITY_ORDER: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
Notice = Literal["firing", "reminder", "resolved"]
NOTICES: tuple[Notice, ...] = ("firing", "reminder", "resolved")
RULE_NAMES = ("stuck_runs", "dead_workers", "queue_age", "failure_rate")
#: Environment variable with more notification URLs (space or comma separated): webhook URLs
#: carry secrets that do not belong in a rules file kept in git.
URLS_ENV = "PULSER_OPS_ALERT_URLS"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def seconds(value: Any) -> Any:
    """``90``, ``"90s"``, ``"15m"``, ``"1h"``, ``"2d"`` as seconds (anything else is left for
    pydantic to refuse)."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m is None:
            raise ValueError(f"not a duration: {value!r} (use seconds, or e.g. 90s, 15m, 1h, 2d)")
        return float(m.group(1)) * _UNIT[m.group(2) or "s"]
    return value


Seconds = Annotated[float, BeforeValidator(seconds), Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Rule(_Strict):
    enabled: bool = True
    severity: AlertSeverity = "warning"
    #: overrides the file's ``reminder`` for this rule
    reminder: Seconds | None = None

    def sql(self) -> dict[str, Any]:
        out: dict[str, Any] = {"enabled": self.enabled, "severity": self.severity}
        if self.reminder is not None:
            out["reminder_seconds"] = self.reminder
        return out


class StuckRuns(_Rule):
    """Running runs whose lease expired at least ``after`` ago (the sweeper has not taken them)."""

    severity: AlertSeverity = "critical"
    after: Seconds = 60

    def sql(self) -> dict[str, Any]:
        return {**super().sql(), "after_seconds": self.after}


class DeadWorkers(_Rule):
    """Workers unseen for ``heartbeat_multiple`` heartbeat intervals while runs are queued in
    their lanes; one unseen for longer than ``forget_after`` is taken as gone for good."""

    severity: AlertSeverity = "critical"
    heartbeat_multiple: float = Field(3, ge=1, le=1000)
    forget_after: Seconds = Field(3600, ge=60)

    def sql(self) -> dict[str, Any]:
        return {
            **super().sql(),
            "heartbeat_multiple": self.heartbeat_multiple,
            "forget_after_seconds": self.forget_after,
        }


class QueueAge(_Rule):
    """A lane's oldest ready run queued longer than ``threshold`` (per lane in ``lanes``)."""

    severity: AlertSeverity = "warning"
    threshold: Seconds = Field(900, ge=1)
    lanes: dict[LaneId, Annotated[float, BeforeValidator(seconds), Field(ge=1)]] = Field(
        default_factory=dict
    )

    def sql(self) -> dict[str, Any]:
        return {**super().sql(), "threshold_seconds": self.threshold, "lanes": dict(self.lanes)}


class FailureRate(_Rule):
    """A template whose finished runs failed at least ``threshold`` of the time over the last
    ``window`` (at least ``min_runs`` of them)."""

    severity: AlertSeverity = "warning"
    window: Seconds = Field(900, ge=60)
    threshold: float = Field(0.5, ge=0, le=1)
    min_runs: int = Field(10, ge=1)

    def sql(self) -> dict[str, Any]:
        return {
            **super().sql(),
            "window_seconds": self.window,
            "threshold": self.threshold,
            "min_runs": self.min_runs,
        }


class RuleSet(_Strict):
    stuck_runs: StuckRuns = Field(default_factory=StuckRuns)
    dead_workers: DeadWorkers = Field(default_factory=DeadWorkers)
    queue_age: QueueAge = Field(default_factory=QueueAge)
    failure_rate: FailureRate = Field(default_factory=FailureRate)


def _target(value: Any) -> Any:
    return {"url": value} if isinstance(value, str) else value


class Target(_Strict):
    """Where notices go: an apprise URL (Slack ``slack://`` or its webhook URL, Discord
    ``discord://``, Microsoft Teams ``workflows://``/``msteams://``, generic JSON ``json://`` /
    ``jsons://``, email ``mailto://``/``mailtos://``, and apprise's other services)."""

    url: str = Field(min_length=1)
    #: only incidents at least this severe
    severity: AlertSeverity = "info"
    #: only these rules (empty: all)
    rules: tuple[Literal["stuck_runs", "dead_workers", "queue_age", "failure_rate"], ...] = ()
    #: only these notices (default: all three)
    notices: tuple[Notice, ...] = NOTICES

    def wants(self, rule: str, severity: str, notice: str) -> bool:
        return (
            (not self.rules or rule in self.rules)
            and SEVERITY_ORDER[severity] >= SEVERITY_ORDER[self.severity]
            and notice in self.notices
        )


class Delivery(_Strict):
    """Retries of a notification that failed (the service answered an error, or not at all)."""

    attempts: int = Field(8, ge=1, le=100)
    backoff: Seconds = Field(1.0, gt=0)
    max_backoff: Seconds = Field(60.0, gt=0)


class Rules(_Strict):
    reminder: Seconds = 3600
    interval: Seconds = Field(30, gt=0)
    #: resolved incidents are deleted after this many days
    keep_days: int = Field(30, ge=1, le=3650)
    board_url: str | None = None
    notify: list[Annotated[Target, BeforeValidator(_target)]] = Field(default_factory=list)
    delivery: Delivery = Field(default_factory=Delivery)
    rules: RuleSet = Field(default_factory=RuleSet)

    def sql(self) -> dict[str, Any]:
        """The rules as ``evaluate_alerts`` takes them (every key given)."""
        r = self.rules
        return {
            "reminder_seconds": self.reminder,
            "keep_days": self.keep_days,
            "stuck_runs": r.stuck_runs.sql(),
            "dead_workers": r.dead_workers.sql(),
            "queue_age": r.queue_age.sql(),
            "failure_rate": r.failure_rate.sql(),
        }

    def with_urls(self, urls: list[str]) -> Rules:
        """These rules with more notification targets (flags, the environment)."""
        if not urls:
            return self
        return self.model_copy(update={"notify": [*self.notify, *map(_flag_target, urls)]})


def _flag_target(url: str) -> Target:
    """A URL of ``--notify`` (or the environment) as a target; ``AlertRulesError`` when it is
    empty or is not text (a lone surrogate is what a shell passes for an undecodable byte)."""
    if not url.strip():
        raise AlertRulesError("--notify: a notification URL cannot be empty")
    try:
        return Target(url=url)
    except ValidationError as e:
        raise AlertRulesError(f"--notify: {e.errors()[0]['msg']}") from None


def urls_from_env(env: dict[str, str] | None = None) -> list[str]:
    raw = (env if env is not None else os.environ).get(URLS_ENV, "")
    return [u for u in re.split(r"[\s,]+", raw) if u]


# --- reading a file, with lines -------------------------------------------------------------------


def _plain(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int], name: str,
           env: dict[str, str]) -> Any:
    """The node as Python values, noting the line of every path (for error messages)."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for k, v in node.value:
            key = yaml.safe_load(yaml.serialize(k)) if isinstance(k, yaml.ScalarNode) else None
            if not isinstance(key, str | int):
                raise AlertRulesError(
                    f"{name} line {k.start_mark.line + 1}: keys must be names",
                    line=k.start_mark.line + 1,
                )
            if key in out:
                raise AlertRulesError(
                    f"{name} line {k.start_mark.line + 1}: {key!r} is given twice",
                    line=k.start_mark.line + 1,
                )
            lines[(*path, key)] = k.start_mark.line + 1
            out[key] = _plain(v, (*path, key), lines, name, env)
            lines[(*path, key)] = k.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v, (*path, i), lines, name, env) for i, v in enumerate(node.value)]
    value = yaml.safe_load(yaml.serialize(node))
    if isinstance(value, str) and _ENV_REF.search(value):
        line = node.start_mark.line + 1

        def expand(m: re.Match[str]) -> str:
            if m.group(1) not in env:
                raise AlertRulesError(
                    f"{name} line {line}: ${{{m.group(1)}}} is not set in the environment",
                    line=line,
                )
            return env[m.group(1)]

        value = _ENV_REF.sub(expand, value)
    return value


def _line_of(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    # pydantic's loc may carry validator names for annotated unions; drop what is not a key
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith("function-"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(the file)"


def parse(text: str, name: str = "rules", env: dict[str, str] | None = None) -> Rules:
    """Rules from YAML text; ``AlertRulesError`` naming the line of the first problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        # The line of what is unfinished (an unclosed mapping opens there), else of the problem.
        mark = e.context_mark or e.problem_mark
        line = mark.line + 1 if mark is not None else None
        where = f" line {line}" if line else ""
        what = ", ".join(x for x in (e.context, e.problem) if x)
        if e.context_mark is not None and e.problem_mark is not None:
            what += f" (line {e.problem_mark.line + 1})"
        raise AlertRulesError(f"{name}{where}: not valid YAML: {what}", line=line) from None
    except yaml.YAMLError as e:
        raise AlertRulesError(f"{name}: not valid YAML: {e}") from None
    except RecursionError:
        raise AlertRulesError(f"{name}: {TOO_DEEP}") from None
    if node is None:
        return Rules()
    lines: dict[tuple[Any, ...], int] = {}
    try:
        data = _plain(node, (), lines, name, dict(os.environ) if env is None else env)
    except RecursionError:
        raise AlertRulesError(f"{name}: {TOO_DEEP}") from None
    if not isinstance(data, dict):
        raise AlertRulesError(
            f"{name} line {node.start_mark.line + 1}: expected a mapping of settings "
            "(reminder, interval, board_url, notify, delivery, rules)",
            line=node.start_mark.line + 1,
        )
    try:
        return Rules.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = tuple(first["loc"])
        line = _line_of(loc, lines)
        msg = first["msg"]
        if first["type"] == "extra_forbidden":
            msg = "unknown setting"
        where = f" line {line}" if line else ""
        raise AlertRulesError(f"{name}{where}: {_path(loc)}: {msg}", line=line) from None


def load(path: Path | str | None) -> Rules:
    """The rules in ``path``, or the defaults when ``path`` is None."""
    if path is None:
        return Rules()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise AlertRulesError(f"{p}: cannot read the rules file ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise AlertRulesError(f"{p}: cannot read the rules file (not UTF-8 text)") from None
    except UnicodeEncodeError:  # a surrogate no file system encoding can hold
        raise AlertRulesError(f"{p}: cannot read the rules file (not a usable name)") from None
    return parse(text, str(p))

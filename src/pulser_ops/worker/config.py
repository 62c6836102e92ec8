"""Worker settings: flags > environment > config file > defaults, validated in one place.

Why one module: the CLI, the Python API and the deployment files all describe the same
knobs; keeping parsing and validation here means an operator gets the same one-line
error whether a bad value came from ``--concurrency``, ``PULSER_OPS_CONCURRENCY`` or a
TOML file, and the error names where the value came from.
"""

from __future__ import annotations

import os
import socket
import tomllib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..models import LANES

#: Environment variable for each setting (the config file uses the field names as keys).
ENV_VARS: dict[str, str] = {
    "worker_id": "PULSER_OPS_WORKER_ID",
    "lanes": "PULSER_OPS_LANES",
    "concurrency": "PULSER_OPS_CONCURRENCY",
    "lease_seconds": "PULSER_OPS_LEASE_SECONDS",
    "heartbeat_seconds": "PULSER_OPS_HEARTBEAT_SECONDS",
    "poll_seconds": "PULSER_OPS_POLL_SECONDS",
    "shutdown_grace_seconds": "PULSER_OPS_SHUTDOWN_GRACE_SECONDS",
    "handlers": "PULSER_OPS_HANDLERS",
    "health_port": "PULSER_OPS_HEALTH_PORT",
    "health_host": "PULSER_OPS_HEALTH_HOST",
}


from ..errors import WorkerConfigError as WorkerConfigError  # noqa: E402  (re-exported)


def default_worker_id() -> str:
    """``<host>-<pid>-<random>``: unique per process, readable on the board."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class WorkerConfig:
    """Everything that shapes one worker process.

    ``lease_seconds`` overrides the template's lease at claim time (None: the template's);
    ``heartbeat_seconds`` None means a third of the shortest lease the worker holds.
    """

    worker_id: str = field(default_factory=default_worker_id)
    lanes: tuple[str, ...] = LANES
    concurrency: int = 1
    lease_seconds: int | None = None
    heartbeat_seconds: float | None = None
    poll_seconds: float = 2.0
    shutdown_grace_seconds: float = 30.0
    burst: bool = False
    #: ``module:attribute`` references to import for python handlers (see ``Worker``).
    handlers: tuple[str, ...] = ()
    #: Serve /healthz and /readyz on this port (None: no endpoint; 0: any free port).
    health_port: int | None = None
    health_host: str = "0.0.0.0"

    def __post_init__(self) -> None:
        validate(self)

    def with_overrides(self, **values: Any) -> WorkerConfig:
        """A copy with the non-None values replaced (and validated)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    def heartbeat_interval(self, held_leases: list[int]) -> float:
        """Seconds between heartbeats: the configured value, but never more than a third of
        the shortest lease held (otherwise one late beat would let the sweeper take the run)."""
        leases = [*held_leases, *([self.lease_seconds] if self.lease_seconds else [])]
        bound = min(leases) / 3 if leases else 10.0
        if self.heartbeat_seconds is not None:
            return min(self.heartbeat_seconds, bound)
        return bound


def validate(cfg: WorkerConfig) -> None:
    if not 1 <= len(cfg.worker_id) <= 200:
        raise WorkerConfigError("worker_id: must be 1 to 200 characters")
    if not cfg.lanes:
        raise WorkerConfigError("lanes: at least one lane (A, B, C or D) is required")
    bad = [lane for lane in cfg.lanes if lane not in LANES]
    if bad:
        raise WorkerConfigError(f"lanes: {', '.join(bad)} not in A, B, C, D")
    if not 1 <= cfg.concurrency <= 1000:
        raise WorkerConfigError(f"concurrency: must be 1 to 1000 (got {cfg.concurrency})")
    if cfg.lease_seconds is not None and not 5 <= cfg.lease_seconds <= 86400:
        raise WorkerConfigError(f"lease_seconds: must be 5 to 86400 (got {cfg.lease_seconds})")
    if cfg.heartbeat_seconds is not None and not 0 < cfg.heartbeat_seconds <= 3600:
        raise WorkerConfigError(
            f"heartbeat_seconds: must be > 0 and <= 3600 (got {cfg.heartbeat_seconds})"
        )
    if not 0 < cfg.poll_seconds <= 3600:
        raise WorkerConfigError(f"poll_seconds: must be > 0 and <= 3600 (got {cfg.poll_seconds})")
    if not 0 <= cfg.shutdown_grace_seconds <= 86400:
        raise WorkerConfigError(
            f"shutdown_grace_seconds: must be 0 to 86400 (got {cfg.shutdown_grace_seconds})"
        )
    if cfg.health_port is not None and not 0 <= cfg.health_port <= 65535:
        raise WorkerConfigError(f"health_port: must be 0 to 65535 (got {cfg.health_port})")
    if not cfg.health_host:
        raise WorkerConfigError("health_host: must not be empty")


# --- parsing raw values (strings from env/flags, anything from files) ------------------------


def _lanes(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("expected a list of lanes or a comma-separated string such as A,B")
    return tuple(str(x).strip().upper() for x in items if str(x).strip())


def _strings(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("expected a list or a comma-separated string")
    return tuple(str(x).strip() for x in items if str(x).strip())


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("expected an integer")
    return int(str(value).strip())


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("expected a number")
    return float(str(value).strip())


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value.strip()


PARSERS: dict[str, Callable[[Any], Any]] = {
    "worker_id": _text,
    "lanes": _lanes,
    "concurrency": _int,
    "lease_seconds": _int,
    "heartbeat_seconds": _float,
    "poll_seconds": _float,
    "shutdown_grace_seconds": _float,
    "burst": _bool,
    "handlers": _strings,
    "health_port": _int,
    "health_host": _text,
}


EXPECTED = {
    "_int": "expected an integer",
    "_float": "expected a number",
    "_bool": "expected true or false",
    "_text": "expected a string",
}


def _parse(name: str, raw: Any, source: str) -> Any:
    parser = PARSERS[name]
    try:
        return parser(raw)
    except ValueError as e:
        reason = str(e) if str(e).startswith("expected") else EXPECTED[parser.__name__]
        raise WorkerConfigError(f"{source}: {reason} (got {raw!r})") from None


def read_file(path: Path) -> dict[str, Any]:
    """Settings from a TOML or YAML file; a ``[worker]`` table / ``worker:`` key is optional."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise WorkerConfigError(f"--config {path}: cannot read it ({e.strerror})") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WorkerConfigError(f"--config {path}: not valid TOML/YAML ({first})") from None
    if not isinstance(data, dict):
        raise WorkerConfigError(f"--config {path}: expected a table of settings")
    if isinstance(data.get("worker"), dict):
        data = data["worker"]
    unknown = sorted(set(data) - set(PARSERS))
    if unknown:
        raise WorkerConfigError(
            f"--config {path}: unknown setting(s) {', '.join(unknown)} "
            f"(known: {', '.join(PARSERS)})"
        )
    return {k: _parse(k, v, f"{path}: {k}") for k, v in data.items()}


def load(
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> WorkerConfig:
    """Merge the sources (flags > env > file > defaults) and validate the result.

    ``flags`` values of None mean "not given". Raises :class:`WorkerConfigError`.
    """
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    if config_file is not None:
        merged.update(read_file(config_file))
    for name, var in ENV_VARS.items():
        raw = env.get(var)
        if raw is not None and raw.strip() != "":
            merged[name] = _parse(name, raw, var)
    for name, raw in (flags or {}).items():
        if raw is None:
            continue
        if name not in PARSERS:
            raise WorkerConfigError(f"unknown setting {name!r}")
        flag = "--" + name.replace("_", "-")
        merged[name] = _parse(name, raw, flag) if isinstance(raw, str) else raw
    try:
        return WorkerConfig(**merged)
    except WorkerConfigError as e:
        raise WorkerConfigError(_with_source(str(e), merged, flags, env, config_file)) from None


def _with_source(
    message: str,
    merged: Mapping[str, Any],
    flags: Mapping[str, Any] | None,
    env: Mapping[str, str],
    config_file: Path | None,
) -> str:
    """Prefix a validation message with where the offending value came from."""
    name = message.split(":", 1)[0]
    if name not in merged:
        return message
    if flags and flags.get(name) is not None:
        return f"--{name.replace('_', '-')}: {message.split(':', 1)[1].strip()}"
    var = ENV_VARS.get(name)
    if var and env.get(var):
        return f"{var}: {message.split(':', 1)[1].strip()}"
    if config_file is not None:
        return f"{config_file}: {message}"
    return message

"""``docker`` steps: ``docker run --rm`` supervised like a shell process.

Before anything runs, the engine is pinged (``GET /_ping``); without a reachable
engine the step fails with :class:`MissingDependency` (retryable: another worker
may have Docker) instead of pretending. On cancel/timeout the container is removed
with ``docker rm -f`` because signalling the ``docker`` CLI alone can leave the
container running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from urllib.parse import urlparse

import httpx

from pulser_ops.errors import MissingDependency, StepFailed
from pulser_ops.steps.context import StepContext
from pulser_ops.steps.environment import param_env, step_env
from pulser_ops.steps.logstream import log_content_type
from pulser_ops.steps.outcome import StepOptions, StepOutcome, failed, utcnow
from pulser_ops.steps.process import run_process
from pulser_ops.steps.shell_step import process_outcome
from pulser_ops.steps.specs import DockerStep
from pulser_ops.steps.template import render_argv

_PING_TIMEOUT = 3.0


def docker_host(options: StepOptions, env: dict[str, str] | None = None) -> tuple[str, bool]:
    """The engine address and whether it came from ``DOCKER_HOST``."""
    source = os.environ if env is None else env
    host = source.get("DOCKER_HOST")
    return (host, True) if host else (options.default_docker_host, False)


def ping_engine(host: str) -> str | None:
    """``None`` if the engine answers ``/_ping``, else why not."""
    parsed = urlparse(host)
    try:
        if parsed.scheme == "unix":
            if not os.path.exists(parsed.path):
                return "socket does not exist"
            transport = httpx.HTTPTransport(uds=parsed.path)
            with httpx.Client(transport=transport, timeout=_PING_TIMEOUT) as client:
                resp = client.get("http://docker/_ping")
        elif parsed.scheme in ("tcp", "http", "https"):
            scheme = "https" if parsed.scheme == "https" else "http"
            with httpx.Client(timeout=_PING_TIMEOUT) as client:
                resp = client.get(f"{scheme}://{parsed.netloc}/_ping")
        else:
            return f"unsupported DOCKER_HOST scheme {parsed.scheme!r}"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if resp.status_code == 200 else f"/_ping returned HTTP {resp.status_code}"


class EngineUnreachable(MissingDependency):
    """No Docker engine answered; ``detail`` says why (kept out of the stable message)."""

    def __init__(self, host: str, from_env: bool, detail: str) -> None:
        hint = "check DOCKER_HOST" if from_env else "set DOCKER_HOST"
        super().__init__(
            f"docker step needs a reachable Docker engine (no daemon at {host}; {hint})"
        )
        self.host = host
        self.detail = detail


def require_engine(options: StepOptions) -> str:
    """Return the docker CLI path, or raise MissingDependency with a fix-it message."""
    host, from_env = docker_host(options, dict(options.base_env) if options.base_env else None)
    problem = ping_engine(host)
    if problem is not None:
        raise EngineUnreachable(host, from_env, problem)
    cli = shutil.which("docker")
    if cli is None:
        raise MissingDependency("docker step needs the docker CLI on PATH")
    return cli


def docker_argv(cli: str, spec: DockerStep, ctx: StepContext, container: str) -> list[str]:
    """``docker run`` argv. Env values are not in argv (``-e NAME`` only) so params and
    secrets do not show up in ``ps``; the CLI copies them from its own environment."""
    names = sorted(set(param_env(ctx.params)) | set(spec.env) | {"PULSER_RUN_ID", "PULSER_ATTEMPT"})
    argv = [cli, "run", "--rm", "--name", container, "--init"]
    for name in names:
        argv += ["-e", name]
    argv.append(spec.image)
    if isinstance(spec.command, str):
        argv += ["/bin/sh", "-c", spec.command]
    elif spec.command is not None:
        argv += render_argv(spec.command, ctx.params, where=f"step {spec.name!r} command")
    return argv


def run_docker(spec: DockerStep, ctx: StepContext, options: StepOptions) -> StepOutcome:
    started_at = utcnow()
    try:
        cli = require_engine(options)
    except MissingDependency as exc:
        detail = exc.detail if isinstance(exc, EngineUnreachable) else None
        ctx.emit("step", "error", exc.message, {"step": spec.name, "detail": detail})
        return failed(started_at, exc)
    container = f"pulser-{ctx.run_id[:8]}-{spec.name}-{uuid.uuid4().hex[:8]}".lower()
    argv = docker_argv(cli, spec, ctx, container)
    env = step_env(ctx, spec.name, spec.env, base=options.base_env)

    def remove_container() -> None:
        subprocess.run(
            [cli, "rm", "-f", container],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )

    try:
        res = run_process(
            argv,
            ctx=ctx,
            step_name=spec.name,
            env=env,
            cwd=ctx.workdir,
            timeout_seconds=spec.timeout_seconds,
            kill_grace_seconds=spec.kill_grace_seconds,
            options=options,
            on_stop=remove_container,
        )
    except OSError as exc:
        return failed(started_at, StepFailed(f"cannot start docker CLI: {exc!r}"))
    log_name = f"{spec.name}.log"
    ctx.save_artifact(log_name, res.log, "log", log_content_type(res.log))
    return process_outcome(
        res,
        started_at=started_at,
        ok_exit_codes=spec.ok_exit_codes,
        timeout_seconds=spec.timeout_seconds,
        artifacts=(log_name,),
    )

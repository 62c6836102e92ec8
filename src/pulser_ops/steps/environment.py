"""Environment and working directory for child processes.

Params reach scripts only through the environment (``PULSER_PARAM_<NAME>`` and
``PULSER_PARAMS_JSON``), never through the command string, so a value such as
``$(touch pwned)`` is inert data for ``/bin/sh -c``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pulser_ops.errors import StepFailed
from pulser_ops.steps.context import StepContext
from pulser_ops.steps.template import interpolate, to_text

_NOT_ENV_CHAR = re.compile(r"[^A-Z0-9_]")


def param_env_name(name: str) -> str:
    """``my-param`` → ``PULSER_PARAM_MY_PARAM``."""
    return "PULSER_PARAM_" + _NOT_ENV_CHAR.sub("_", name.upper())


def param_env(params: Mapping[str, Any]) -> dict[str, str]:
    """The ``PULSER_PARAM_*`` and ``PULSER_PARAMS_JSON`` variables for a params object."""
    env = {param_env_name(k): to_text(v) for k, v in params.items()}
    env["PULSER_PARAMS_JSON"] = json.dumps(dict(params), separators=(",", ":"), sort_keys=True)
    return env


def step_env(
    ctx: StepContext,
    step_name: str,
    spec_env: Mapping[str, str],
    *,
    base: Mapping[str, str] | None,
) -> dict[str, str]:
    """Base env, then run identity and params, then the step's own (templated) ``env``.

    The step's ``env`` wins so a template can deliberately override anything.
    """
    env = dict(os.environ if base is None else base)
    env.update(param_env(ctx.params))
    env.update(
        {
            "PULSER_RUN_ID": ctx.run_id,
            "PULSER_ATTEMPT": str(ctx.attempt),
            "PULSER_STEP_NAME": step_name,
            "PULSER_WORKDIR": str(ctx.workdir),
        }
    )
    for key, value in spec_env.items():
        env[key] = interpolate(value, ctx.params, where=f"step {step_name!r} env.{key}")
    return env


def resolve_cwd(ctx: StepContext, cwd: str | None) -> Path:
    """``cwd`` relative to the run's workdir (absolute paths are used as given)."""
    path = ctx.workdir if cwd is None else (ctx.workdir / cwd)
    if not path.is_dir():
        raise StepFailed(f"cwd {str(path)!r} does not exist or is not a directory")
    return path

"""Shared helpers of the shipping checks: the repository's files and running GitHub steps.

A step's ``run:`` script is run the way GitHub's runner runs it on Linux (``bash
--noprofile --norc -eo pipefail``), with the environment GitHub would give it: the
workflow's, the job's and the step's ``env:`` (values that are expressions are supplied by
the test), plus ``GITHUB_*``/``RUNNER_*`` variables the test chooses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
WORKFLOWS = ROOT / ".github" / "workflows"


def tool(name: str) -> str:
    """A linter installed in the test venv (actionlint, hadolint, shellcheck, ...)."""
    path = VENV_BIN / name
    assert path.is_file(), f"{name} is missing from the venv: pip install -e '.[dev]'"
    return str(path)


def workflow_files() -> list[Path]:
    """Every workflow, including those other changes add later."""
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def load_workflow(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in data:  # YAML 1.1 reads the key `on` as True
        data["on"] = data.pop(True)
    return data


def steps(wf: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(job id, job, step) for every step of every job."""
    for job_id, job in wf["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, job, step


def step(wf: dict[str, Any], job_id: str, name: str) -> dict[str, Any]:
    found = [s for s in wf["jobs"][job_id]["steps"] if s.get("name") == name]
    assert len(found) == 1, f"{job_id}: no single step named {name!r}"
    return found[0]


def run_step(
    script: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = 600,
    path_first: list[Path] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one step's ``run:`` script as GitHub does; ``python`` is the test's interpreter."""
    script_file = Path(env.get("RUNNER_TEMP", cwd)) / "step.sh"
    script_file.parent.mkdir(parents=True, exist_ok=True)
    script_file.write_text(script)
    path = [*(str(p) for p in path_first or []), str(VENV_BIN), os.environ["PATH"]]
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)],
        cwd=cwd,
        env={**_clean_env(), "PATH": os.pathsep.join(path), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PULSER_OPS_", "SUPABASE_", "GITHUB_", "RUNNER_", "PYTEST_"))
    }

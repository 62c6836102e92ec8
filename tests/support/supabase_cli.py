"""Run the real Supabase CLI (pinned in tools/supabase-cli) against test databases.

Why the real binary: the point of these tests is that ``pulser-ops db push`` and
``supabase db push`` agree, and that the Supabase advisors accept our schema;
only the actual CLI can prove that.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BINARY = REPO_ROOT / "tools" / "supabase-cli" / "node_modules" / ".bin" / "supabase"


class SupabaseCliMissing(RuntimeError):
    """The CLI is not installed (run scripts/test, which runs npm ci)."""


def cli_binary() -> Path:
    """``PULSER_OPS_SUPABASE_CLI`` or the npm-pinned binary in tools/supabase-cli."""
    path = Path(os.environ.get("PULSER_OPS_SUPABASE_CLI", DEFAULT_BINARY))
    if not path.exists():
        raise SupabaseCliMissing(f"Supabase CLI not found at {path}; run scripts/test")
    return path


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The ``--output-format json`` document on stdout."""
        return json.loads(self.stdout)

    def describe(self) -> str:
        return (
            f"exit {self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def run_cli(args: list[str], *, workdir: Path | None = None, timeout: float = 180) -> CliResult:
    """Run ``supabase <args>`` non-interactively.

    ``PGSSLMODE=disable``: the test cluster has no TLS, and the CLI otherwise
    prints a TLS warning on stdout, which corrupts JSON output.
    """
    env = {
        **os.environ,
        "PGSSLMODE": "disable",
        "SUPABASE_YES": "1",
        "DO_NOT_TRACK": "1",
        "SUPABASE_TELEMETRY_DISABLED": "1",
    }
    cmd = [str(cli_binary()), *args]
    if workdir is not None:
        cmd += ["--workdir", str(workdir)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False,
        cwd=workdir or REPO_ROOT,
    )  # fmt: skip
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def make_project(
    root: Path, *, migrations_dir: Path, seed: Path | None, config_toml: Path | None = None
) -> Path:
    """A throwaway project dir with ``supabase/{config.toml,migrations,seed.sql}``.

    Uses the repository's config.toml when present (what users get), otherwise
    ``supabase init`` writes the CLI's default one.
    """
    supa = root / "supabase"
    supa.mkdir(parents=True)
    config = config_toml or REPO_ROOT / "supabase" / "config.toml"
    if config.is_file():
        shutil.copyfile(config, supa / "config.toml")
    else:
        res = run_cli(["init", "--yes"], workdir=root)
        if res.returncode != 0:
            raise RuntimeError(f"supabase init failed: {res.describe()}")
    shutil.copytree(migrations_dir, supa / "migrations", dirs_exist_ok=True)
    if seed is not None and seed.is_file():
        shutil.copyfile(seed, supa / "seed.sql")
    return root


def db_push(project: Path, db_url: str, *, include_seed: bool = False) -> CliResult:
    """``supabase db push --remote=<url> --yes --output-format json``."""
    args = ["db", "push", f"--remote={db_url}", "--yes", "--output-format", "json"]
    if include_seed:
        args.append("--include-seed")
    return run_cli(args, workdir=project)


def db_advisors(db_url: str) -> CliResult:
    """``supabase db advisors`` for every type and level, as JSON."""
    return run_cli([
        "db", "advisors", f"--remote={db_url}", "--type", "all", "--level", "info",
        "--output-format", "json",
    ])  # fmt: skip

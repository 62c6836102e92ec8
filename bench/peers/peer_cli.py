"""The command line both peer scripts share, so the runner drives PgQueuer and Procrastinate
with the very same arguments (runs in bench/.venv-peers, next to pgq.py and proc.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: gate.py
from gate import ready_then_wait

__all__ = ["ready_then_wait", "run"]

Command = Callable[[argparse.Namespace], Awaitable[None]]


def run(commands: dict[str, Command]) -> None:
    """Parse ``<install|enqueue|paced|worker> DSN [options]`` and run that command."""
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=sorted(commands))
    p.add_argument("dsn")
    p.add_argument("--mode", default="single")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--gap", type=float, default=0.02)
    p.add_argument("--out", default="/dev/null")
    p.add_argument("--ready", default="")
    p.add_argument("--go", default="", help="start only once this file exists (gate.py)")
    a = p.parse_args()
    asyncio.run(commands[a.cmd](a))

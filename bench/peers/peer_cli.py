"""The command line both peer scripts share, so the runner drives PgQueuer and Procrastinate
with the very same arguments (runs in bench/.venv-peers, next to pgq.py and proc.py)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

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
    a = p.parse_args()
    asyncio.run(commands[a.cmd](a))

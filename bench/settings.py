"""The exact settings a run used, printed before the results (and written with them).

Why: a benchmark number without its PostgreSQL version, GUCs, CPU count, load and package
versions can not be compared with anything.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
from typing import Any

import psycopg

GUCS = [
    "server_version",
    "shared_buffers",
    "work_mem",
    "synchronous_commit",
    "fsync",
    "wal_level",
    "max_connections",
    "jit",
    "shared_preload_libraries",
    "effective_io_concurrency",
    "random_page_cost",
    "autovacuum",
]


def collect(admin_url: str, peers: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    with psycopg.connect(admin_url) as conn:
        gucs = {g: conn.execute(f"show {g}").fetchone()[0] for g in GUCS}  # type: ignore[index]
    ours = {p: md.version(p) for p in ("pulser-ops", "psycopg", "psycopg-pool", "pydantic")}
    return {
        "postgres": gucs,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages (pulser venv)": ours,
        "packages (peers venv)": peers,
        "parameters": params,
    }


def render(info: dict[str, Any]) -> str:
    lines = []
    for key, value in info.items():
        if isinstance(value, dict):
            lines.append(f"- {key}: " + ", ".join(f"{k}={v}" for k, v in value.items()))
        else:
            lines.append(f"- {key}: {value}")
    return "\n".join(lines)

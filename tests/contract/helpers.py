"""Small shared steps of the contract tests (fixtures live in conftest.py)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import httpx

from pulser_ops import Client, Run, Template

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "count": {"type": "integer", "minimum": 0, "default": 1},
    },
    "required": ["name"],
}


def template(client: Client, name: str = "hello", **overrides: Any) -> Template:
    body: dict[str, Any] = {
        "name": name,
        "description": "says hello",
        "params_schema": SCHEMA,
        "steps": [{"kind": "shell", "name": "greet", "run": "echo hi"}],
        "default_lane": "A",
        "max_attempts": 3,
        "lease_seconds": 30,
        "retry_backoff_seconds": 0,
        "retry_backoff_max_seconds": 0,
        "retry_jitter": 0,
    }
    body.update(overrides)
    return client.templates.upsert(body)


def claimed(client: Client, worker: str = "w1", **create: Any) -> Run:
    """A fresh run of ``hello``, claimed by ``worker``."""
    created = client.runs.create("hello", {"name": "x"}, **create)
    runs = client.runs.claim(worker, lanes=[created.lane])
    assert [r.id for r in runs] == [created.id]
    return runs[0]


def fetch(url: str) -> bytes:
    """What a signed URL serves: an HTTP URL (Storage) or a file:// URI (local files)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        with open(url2pathname(parsed.path), "rb") as f:
            return f.read()
    return httpx.get(url).raise_for_status().content


def new_id() -> str:
    return str(uuid.uuid4())


def nested_lists(depth: int, top: list[Any] | None = None) -> list[Any]:
    """``[[[...]]]``, ``depth`` lists deep (built without recursion; ``top`` is the outermost)."""
    out: list[Any] = [] if top is None else top
    inner = out
    for _ in range(depth - 1):
        inner.append([])
        inner = inner[0]
    return out


def basic_world(client: Client) -> tuple[Run, Run, Run]:
    """On an emptied control plane: the ``hello`` template and three runs: one running
    (claimed by w1), one queued (lane B), one finished (cancelled, lane C)."""
    template(client)
    running = claimed(client)
    queued = client.runs.create("hello", {"name": "q"}, lane="B")
    finished = client.runs.cancel(client.runs.create("hello", {"name": "f"}, lane="C").id)
    return running, queued, finished

"""`pulser-ops mcp` end to end: the real command as a subprocess, driven over stdio by the
`mcp` package's own client, against real PostgreSQL, with a real (in-process) worker running
the template. An agent lists the tools (each template a tool whose input schema is its params
schema), enqueues a run, waits for it, reads its artifact; and with an operator's credentials
it gets an operator's rights and nothing more."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import mcp_types as types
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

import pulser_ops
from pulser_ops import AsyncClient
from pulser_ops.worker import Worker, WorkerConfig
from tests.contract.helpers import new_id

SCHEMA = {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {"name": {"type": "string", "minLength": 1, "description": "whom to greet"},
                   "shout": {"type": "boolean", "default": False}},
}  # fmt: skip
TEMPLATE = {
    "name": "hello", "description": "Print a greeting", "default_lane": "A", "max_attempts": 1,
    "params_schema": SCHEMA,
    "steps": [{"kind": "shell", "name": "greet", "command": ["echo", "hello", "{{ params.name }}"]}],
}  # fmt: skip


@asynccontextmanager
async def mcp_session(db_url: str, storage: Path) -> AsyncIterator[ClientSession]:
    """``pulser-ops mcp`` over stdio, as an assistant launches it."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "pulser_ops.cli", "mcp", "--db-url", db_url],
        env={"PULSER_OPS_STORAGE_DIR": str(storage)},
        cwd=str(storage),
    )
    with tempfile.TemporaryFile("w+") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(
            read, write
        ) as session:
            await session.initialize()
            yield session


def _data(result: types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


def _error(result: types.CallToolResult) -> str:
    assert result.is_error
    return str((result.structured_content or {}).get("error"))


def _work(db_url: str, storage: Path) -> None:
    """The reference worker, in-process: runs what is queued on lane A, then stops."""
    with pulser_ops.connect(db_url, storage_dir=storage) as c:
        cfg = WorkerConfig(worker_id="mcp-worker", lanes=("A",), poll_seconds=0.2, burst=True)
        Worker(c, config=cfg).run()


async def test_an_agent_enqueues_a_template_run_waits_and_reads_its_artifact(
    db_url: str, tmp_path: Path
) -> None:
    with pulser_ops.connect(db_url, storage_dir=tmp_path) as sdk:
        sdk.templates.upsert(TEMPLATE)
    async with mcp_session(db_url, tmp_path) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        assert {"list_templates", "enqueue_run", "get_run", "wait_for_run", "cancel_run",
                "expedite_run", "list_schedules", "list_runs", "read_artifact",
                "run_hello"} <= set(tools)  # fmt: skip
        assert tools["run_hello"].input_schema == SCHEMA  # the template's params schema
        listed = _data(await mcp.call_tool("list_templates", {}))
        assert listed["templates"][0]["params_schema"] == SCHEMA

        refused = await mcp.call_tool("run_hello", {"shout": True})
        assert _error(refused) == "invalid_params" and "params.name: is required" in str(
            refused.content[0])  # fmt: skip
        run = _data(await mcp.call_tool("run_hello", {"name": "agent"}))["run"]
        assert (run["status"], run["lane"], run["params"]) == (
            "queued", "A", {"name": "agent", "shout": False})

        worker = threading.Thread(target=_work, args=(db_url, tmp_path))
        worker.start()
        try:
            waited = _data(await mcp.call_tool(
                "wait_for_run", {"run_id": run["id"], "timeout_seconds": 60}))  # fmt: skip
        finally:
            await asyncio.to_thread(worker.join, 60)
        assert waited["ended"] and not waited["timed_out"]
        assert waited["run"]["status"] == "succeeded"

        got = _data(await mcp.call_tool("get_run", {"run_id": run["id"]}))
        assert [(s["name"], s["status"]) for s in got["steps"]] == [("greet", "succeeded")]
        assert got["events"][-1]["kind"] == "succeeded"
        [log] = [a for a in got["artifacts"] if a["name"] == "greet.log"]
        read = await mcp.call_tool("read_artifact", {"run_id": run["id"], "name": log["name"]})
        assert "hello agent" in _data(read)["text"]
        assert isinstance(read.content[0], types.TextContent)

        found = _data(await mcp.call_tool("list_runs", {"template": "hello", "status": ["succeeded"]}))
        assert [r["id"] for r in found["runs"]] == [run["id"]]
        again = await mcp.call_tool("cancel_run", {"run_id": run["id"]})
        assert _error(again) == "already_terminal"
        timed = _data(await mcp.call_tool("wait_for_run", {
            "run_id": _data(await mcp.call_tool("enqueue_run", {
                "template": "hello", "params": {"name": "later"}, "lane": "C"}))["run"]["id"],
            "timeout_seconds": 0.5}))  # fmt: skip
        assert timed["timed_out"] and timed["run"]["status"] == "queued"
        assert _error(await mcp.call_tool("get_run", {"run_id": "nope"})) == "invalid_input"
        assert _error(await mcp.call_tool("enqueue_run", {
            "template": "hello", "params": {"name": "x"}, "priority": "high"})) == "invalid_input"
        assert _error(await mcp.call_tool("no_such_tool", {})) == "unknown_tool"

        # a run that waits an hour, made claimable now; and the schedules, listed
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        with pulser_ops.connect(db_url, storage_dir=tmp_path) as sdk:
            waiting = sdk.runs.create("hello", {"name": "tonight"}, lane="D", run_after=later)
            sdk.schedules.upsert({"name": "nightly-hello", "template": "hello",
                                  "cron": "0 2 * * *", "params": {"name": "night"}})  # fmt: skip
        moved = _data(await mcp.call_tool("expedite_run", {"run_id": str(waiting.id)}))["run"]
        assert datetime.fromisoformat(moved["available_at"]) <= datetime.now(UTC)
        assert _error(await mcp.call_tool("expedite_run", {"run_id": run["id"]})) == (
            "already_terminal")
        [sched] = _data(await mcp.call_tool("list_schedules", {}))["schedules"]
        assert (sched["name"], sched["cron"], sched["enabled"]) == ("nightly-hello", "0 2 * * *", True)


def _operator_url(db_url: str, sub: str) -> str:
    """The database as an operator: the role and JWT claims PostgREST would set."""
    claims = json.dumps({"role": "authenticated", "aud": "authenticated", "sub": sub,
                         "app_metadata": {}}, separators=(",", ":"))  # fmt: skip
    return f"{db_url}?options={quote(f'-c role=authenticated -c request.jwt.claims={claims}')}"


async def test_an_operators_credentials_give_an_operators_rights(
    db_url: str, tmp_path: Path
) -> None:
    with pulser_ops.connect(db_url, storage_dir=tmp_path) as sdk:
        sdk.templates.upsert(TEMPLATE)
        theirs = sdk.runs.create("hello", {"name": "someone else"})
    me = new_id()
    async with mcp_session(_operator_url(db_url, me), tmp_path) as mcp:
        mine = _data(await mcp.call_tool("run_hello", {"name": "me"}))["run"]
        assert mine["owner_id"] == me
        listed = _data(await mcp.call_tool("list_runs", {}))["runs"]
        assert [r["id"] for r in listed] == [mine["id"]]  # RLS: only their own
        assert _error(await mcp.call_tool("get_run", {"run_id": str(theirs.id)})) == "not_found"
        assert _error(await mcp.call_tool("cancel_run", {"run_id": str(theirs.id)})) in (
            "not_found", "permission_denied")
        cancelled = _data(await mcp.call_tool("cancel_run", {"run_id": mine["id"]}))["run"]
        assert cancelled["status"] == "cancelled"
    with pulser_ops.connect(db_url, storage_dir=tmp_path) as sdk:
        assert sdk.runs.get(theirs.id).status == "queued"


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_http_transport_requires_its_bearer_token(token: str | None) -> None:
    """Streamable HTTP at /mcp; with a token, nothing reaches the server without it. (The
    requests here are refused before any tool runs, so no database is needed.)"""
    from starlette.testclient import TestClient

    from pulser_ops.agents.server import http_app

    app = http_app(cast(AsyncClient, object()), host="127.0.0.1", token=token)
    accept = {"Accept": "application/json, text/event-stream"}
    with TestClient(app, base_url="http://127.0.0.1:8766") as http:  # type: ignore[arg-type]
        bare = http.post("/mcp", json={}, headers=accept)
        assert (bare.status_code == 401) == (token is not None)
        if token:
            wrong = http.post("/mcp", json={}, headers={**accept, "Authorization": "Bearer x"})
            ok = http.post("/mcp", json={}, headers={**accept, "Authorization": f"Bearer {token}"})
            assert wrong.status_code == 401 and ok.status_code not in (401, 404)
        else:
            assert bare.status_code not in (401, 404)  # the MCP endpoint answered


async def test_the_same_tools_over_streamable_http(db_url: str, tmp_path: Path) -> None:
    """`pulser-ops mcp --http` as a process, driven by the mcp package's HTTP client."""
    import socket
    import subprocess

    from mcp.client.streamable_http import streamable_http_client

    with pulser_ops.connect(db_url, storage_dir=tmp_path) as sdk:
        sdk.templates.upsert(TEMPLATE)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "pulser_ops.cli", "mcp", "--db-url", db_url, "--http",
            "--port", str(port)]  # fmt: skip
    proc = await asyncio.to_thread(
        subprocess.Popen, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path
    )
    try:
        assert proc.stderr is not None
        banner = await asyncio.to_thread(proc.stderr.readline)
        assert f"http://127.0.0.1:{port}/mcp" in banner.decode()
        for _ in range(100):  # the banner comes just before uvicorn binds
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                await asyncio.sleep(0.1)
        async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write), \
                ClientSession(read, write) as mcp:  # fmt: skip
            await mcp.initialize()
            tools = {t.name: t for t in (await mcp.list_tools()).tools}
            assert tools["run_hello"].input_schema == SCHEMA
            run = _data(await mcp.call_tool("run_hello", {"name": "over http"}))["run"]
            assert run["status"] == "queued"
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 10)

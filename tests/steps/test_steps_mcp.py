"""MCP steps against the real stdio server in ``mcp_echo_server.py``."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

from pulser_ops.steps import RecordingContext, parse_step, run_step
from tests.steps.steps_helpers import pid_gone, wait_until

SERVER = str(Path(__file__).with_name("mcp_echo_server.py"))


def mcp(tool: str, arguments: dict[str, Any], **fields: Any) -> Any:
    return parse_step(
        {
            "kind": "mcp",
            "name": "tool",
            "command": [sys.executable, SERVER],
            "tool": tool,
            "arguments": arguments,
            **fields,
        }
    )


def test_echo_with_templated_argument(ctx: RecordingContext) -> None:
    ctx.params = {"msg": "hello $(whoami)"}
    outcome = run_step(mcp("echo", {"text": "{{ params.msg }}"}), ctx)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result["text"] == "hello $(whoami)"
    assert outcome.artifacts == ("tool.log", "tool.result.json")
    saved = json.loads(ctx.artifacts["tool.result.json"].text)
    assert saved["is_error"] is False
    assert saved["content"][0] == {"type": "text", "text": "hello $(whoami)"}


def test_add_keeps_param_types(ctx: RecordingContext) -> None:
    ctx.params = {"a": 40}
    outcome = run_step(mcp("add", {"a": "{{ params.a }}", "b": 2}), ctx)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result["text"] == "42"
    assert outcome.result["structured_content"] == {"result": 42}


def test_tool_error_fails_the_step(ctx: RecordingContext) -> None:
    outcome = run_step(mcp("fail", {"message": "disk on fire"}), ctx)
    assert outcome.status == "failed"
    assert outcome.error_class == "mcp_tool_error"
    assert "disk on fire" in (outcome.error or "")
    assert json.loads(ctx.artifacts["tool.result.json"].text)["is_error"] is True


def test_unknown_tool_is_a_tool_error(ctx: RecordingContext) -> None:
    outcome = run_step(mcp("nope", {}), ctx)
    assert outcome.status == "failed" and outcome.error_class == "mcp_tool_error"


def test_params_and_env_reach_the_server(ctx: RecordingContext) -> None:
    ctx.params = {"region": "eu-west"}
    outcome = run_step(
        mcp("env", {"name": "TARGET"}, env={"TARGET": "region={{ params.region }}"}), ctx
    )
    assert outcome.result["text"] == "region=eu-west"
    outcome = run_step(mcp("env", {"name": "PULSER_PARAM_REGION"}, name="t2"), ctx)
    assert outcome.result["text"] == "eu-west"


def test_cancel_stops_the_call_and_the_server(ctx: RecordingContext) -> None:
    pid_file = ctx.workdir / "server.pid"

    def cancel_when_server_started() -> None:
        wait_until(lambda: pid_file.exists() and pid_file.read_text() != "", limit=30)
        ctx.cancel_token.set()

    threading.Thread(target=cancel_when_server_started, daemon=True).start()
    outcome = run_step(
        mcp("sleep", {"seconds": 300}, env={"ECHO_SERVER_PID_FILE": str(pid_file)}), ctx
    )
    assert outcome.status == "cancelled"
    assert outcome.duration_seconds < 60
    pid = int(pid_file.read_text())
    assert wait_until(lambda: pid_gone(pid)), "MCP server outlived the cancelled step"
    assert "tool.log" in ctx.artifacts


def test_timeout(ctx: RecordingContext) -> None:
    outcome = run_step(mcp("sleep", {"seconds": 300}, timeout_seconds=5), ctx)
    assert outcome.status == "failed" and outcome.error_class == "step_timeout"


def test_missing_server_executable(ctx: RecordingContext) -> None:
    spec = parse_step({"kind": "mcp", "command": ["no-such-mcp-server-xyz"], "tool": "echo"})
    outcome = run_step(spec, ctx)
    assert outcome.status == "failed" and outcome.error_class == "missing_dependency"


def test_server_that_exits_immediately_fails_cleanly(ctx: RecordingContext) -> None:
    spec = parse_step(
        {
            "kind": "mcp",
            "command": [sys.executable, "-c", "import sys; print('bye', file=sys.stderr)"],
            "tool": "echo",
            "timeout_seconds": 30,
        }
    )
    outcome = run_step(spec, ctx)
    assert outcome.status == "failed"
    assert outcome.error_class == "step_failed"
    assert "bye" in ctx.artifacts[f"{spec.name}.log"].text

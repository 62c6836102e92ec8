"""``mcp`` steps: start an MCP server over stdio, call one tool, save its result.

Uses the installed ``mcp`` SDK (2.x: ``stdio_client`` + ``ClientSession``). The
server's stderr goes to a file in the run's workdir and is saved as the step's
log artifact. Cancelling the asyncio task makes ``stdio_client`` shut the server
down (close stdin, then terminate its process tree), so nothing is leaked.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from typing import Any

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from pulser_ops.errors import MissingDependency, StepError, StepFailed
from pulser_ops.steps.aio import run_cancellable
from pulser_ops.steps.context import StepContext
from pulser_ops.steps.environment import param_env, resolve_cwd
from pulser_ops.steps.outcome import StepOutcome, failed, utcnow
from pulser_ops.steps.specs import McpStep
from pulser_ops.steps.template import interpolate, render_argv, render_json

_LOG_MAX = 1024 * 1024
_RESULT_TEXT_MAX = 64 * 1024


def _server_params(spec: McpStep, ctx: StepContext) -> StdioServerParameters:
    argv = render_argv(spec.command, ctx.params, where=f"step {spec.name!r} command")
    executable = shutil.which(argv[0]) if "/" not in argv[0] else argv[0]
    if executable is None:
        raise MissingDependency(f"mcp server executable not found: {argv[0]!r}")
    # The SDK passes only a safe subset of the worker's env (PATH, HOME...) plus this.
    env = param_env(ctx.params)
    env.update({"PULSER_RUN_ID": ctx.run_id, "PULSER_ATTEMPT": str(ctx.attempt)})
    for key, value in spec.env.items():
        env[key] = interpolate(value, ctx.params, where=f"step {spec.name!r} env.{key}")
    return StdioServerParameters(
        command=executable, args=argv[1:], env=env, cwd=resolve_cwd(ctx, spec.cwd)
    )


async def _call(
    params: StdioServerParameters, tool: str, arguments: dict[str, Any], errlog: Any
) -> dict[str, Any]:
    async with (
        stdio_client(params, errlog=errlog) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool(tool, arguments)
    return {
        "is_error": bool(result.is_error),
        "content": [block.model_dump(mode="json", exclude_none=True) for block in result.content],
        "structured_content": result.structured_content,
    }


def _text_of(payload: dict[str, Any]) -> str:
    texts = [str(b.get("text", "")) for b in payload["content"] if b.get("type") == "text"]
    return "\n".join(texts)[:_RESULT_TEXT_MAX]


def run_mcp(spec: McpStep, ctx: StepContext) -> StepOutcome:
    """Call ``spec.tool``; ``isError`` from the tool fails the step (error_class mcp_tool_error)."""
    started_at = utcnow()
    try:
        params = _server_params(spec, ctx)
    except StepError as exc:
        return failed(started_at, exc)
    arguments = render_json(dict(spec.arguments), ctx.params, where=f"step {spec.name!r} arguments")
    log_name = f"{spec.name}.log"
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errlog:
        try:
            payload = run_cancellable(
                lambda: _call(params, spec.tool, arguments, errlog),
                token=ctx.cancel_token,
                timeout_seconds=spec.timeout_seconds,
                what=f"mcp tool {spec.tool!r}",
            )
            error: StepError | None = None
        except StepError as exc:
            payload, error = None, exc
        except MCPError as exc:
            payload, error = None, StepFailed(f"mcp protocol error calling {spec.tool!r}: {exc}")
        except Exception as exc:  # server crash, broken pipe, ExceptionGroup from anyio...
            payload, error = None, StepFailed(f"mcp server failed: {exc!r}")
        errlog.seek(0)
        log_text = errlog.read()[-_LOG_MAX:]
    ctx.save_artifact(log_name, log_text, "log", "text/plain; charset=utf-8")
    if payload is None:
        assert error is not None
        return failed(started_at, error, artifacts=(log_name,))

    result_name = f"{spec.name}.result.json"
    ctx.save_artifact(result_name, json.dumps(payload, indent=2), "json", "application/json")
    artifacts = (log_name, result_name)
    text = _text_of(payload)
    result = {
        "text": text,
        "structured_content": payload["structured_content"],
        "is_error": payload["is_error"],
    }
    if payload["is_error"]:
        return failed(
            started_at,
            StepFailed(f"mcp tool {spec.tool!r} returned an error: {text or '(no text)'}"),
            error_class="mcp_tool_error",
            result=result,
            artifacts=artifacts,
        )
    return StepOutcome(
        status="succeeded",
        started_at=started_at,
        finished_at=utcnow(),
        result=result,
        artifacts=artifacts,
    )

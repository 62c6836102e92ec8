"""Python handlers loaded by worker processes in the tests (``--handlers tests.worker.handlers``).

``record`` is the side effect the fleet tests count: one line per execution appended to a
file per run (O_APPEND writes of one short line are atomic), written by the handler itself,
not by the queue's bookkeeping.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from pulser_ops.steps import HandlerContext, HandlerRegistry, NonRetryable

registry = HandlerRegistry()


@registry.register("record")
def record(ctx: HandlerContext) -> dict[str, Any]:
    started = time.time()
    hold = float(ctx.params.get("hold", 0))
    if hold:
        time.sleep(hold)
    ended = time.time()
    out = Path(os.environ["PULSER_TEST_EXEC_DIR"]) / ctx.run_id
    line = f"{ctx.attempt} {os.environ.get('PULSER_OPS_WORKER_ID', os.getpid())} {started!r} {ended!r}\n"
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    if ctx.params.get("fail_first") and ctx.attempt == 1:
        raise RuntimeError("the first attempt of this run fails on purpose")
    return {"n": ctx.params.get("n")}


@registry.register("spin")
def spin(ctx: HandlerContext) -> dict[str, Any]:
    """A tight pure-Python loop that holds the GIL for ``seconds``."""
    end = time.monotonic() + float(ctx.params["seconds"])
    x = 0
    while time.monotonic() < end:
        for _ in range(10_000):
            x += 1
    return {"iterations": x}


@registry.register("echo")
def echo(ctx: HandlerContext) -> dict[str, Any]:
    ctx.log.info("echoing", keys=sorted(ctx.params))
    ctx.save_artifact("echo.json", '{"ok": true}', "json", "application/json")
    return {"params": dict(ctx.params), "args": dict(ctx.args)}


@registry.register("refuse")
def refuse(ctx: HandlerContext) -> None:
    raise NonRetryable("bad input, retrying cannot help", error_class="bad_input")


@registry.register("sleepy")
def sleepy(ctx: HandlerContext) -> str:
    ctx.sleep(float(ctx.params.get("seconds", 60)))
    return "rested"


def _mark(ctx: HandlerContext, what: str) -> None:
    out = Path(os.environ["PULSER_TEST_EXEC_DIR"]) / ctx.run_id
    line = f"{what} {ctx.attempt} {os.environ.get('PULSER_OPS_WORKER_ID', os.getpid())} {time.time()!r}\n"
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@registry.register("chaos")
def chaos(ctx: HandlerContext) -> None:
    """Marks its start and its end, so an execution cut short by SIGKILL is still visible;
    logs ``lines`` numbered lines in between (a test can then count the ones that arrived)."""
    _mark(ctx, "start")
    for i in range(int(ctx.params.get("lines", 0))):
        ctx.log.info(f"line {i} of attempt {ctx.attempt}")
    time.sleep(float(ctx.params.get("hold", 0)))
    _mark(ctx, "end")


@registry.register("odd")
def odd(ctx: HandlerContext) -> dict[str, Any]:
    """Text PostgreSQL cannot hold, from Python: lone surrogates and NUL (and a valid pair)."""
    ctx.log.info("lone \udcff and \ud800, a pair \ud83d\ude00, a nul \x00", raw="v\x00\udcff")
    ctx.save_artifact("odd.txt", "a\x00b \udcff")
    return {"text": "nul \x00 here", "bad": "\udcff"}


@registry.register("bad_kind")
def bad_kind(ctx: HandlerContext) -> None:
    """An event of a kind the control plane refuses, between two good ones."""
    ctx.log.info("before")
    ctx.step_ctx.emit("Not A Kind!", "info", "refused")
    ctx.log.info("after")


@registry.register("spin_async")
async def spin_async(ctx: HandlerContext) -> dict[str, Any]:
    """``spin`` as an ``async def`` handler: it never awaits, so it holds the GIL *and* blocks
    the worker's event loop for ``seconds``."""
    return spin(ctx)


@registry.register("block_in_c")
def block_in_c(ctx: HandlerContext) -> str:
    """Blocked in a C call (``time.sleep``) for ``seconds``, on a handler thread."""
    time.sleep(float(ctx.params["seconds"]))
    return "woke up"


@registry.register("block_loop_in_c")
async def block_loop_in_c(ctx: HandlerContext) -> str:
    """Blocked in a C call (``time.sleep``) inside an ``async def``: the event loop stops."""
    time.sleep(float(ctx.params["seconds"]))  # noqa: ASYNC251 - blocking the loop is the point
    return "woke up"


@registry.register("draft_stories")
def draft_stories(ctx: HandlerContext) -> None:
    """Stands in for an http/mcp step that asks a model to draft a spec kit: saves an MCP-style
    tool result whose structuredContent holds params fields (docs/SPEC_KIT.md)."""
    draft = {"structuredContent": {"features": ctx.args["features"], "title": "Drafted Title"}}
    ctx.save_artifact("draft.json", json.dumps(draft), "json", "application/json")

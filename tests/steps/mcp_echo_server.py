"""A tiny real MCP server (stdio) used by the mcp step tests.

Tools: ``echo`` (returns its text), ``add`` (integer sum), ``fail`` (tool error),
``env`` (reads an environment variable), ``sleep`` (blocks, to test cancellation).
If ``ECHO_SERVER_PID_FILE`` is set the server writes its pid there at start-up so
tests can check it was shut down.
"""

from __future__ import annotations

import os
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("pulser-echo")


@server.tool()
def echo(text: str) -> str:
    """Return ``text`` unchanged."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Return ``a + b``."""
    return a + b


@server.tool()
def fail(message: str) -> str:
    """Always fail with ``message`` (reported as ``isError``)."""
    raise ToolError(message)


@server.tool()
def env(name: str) -> str:
    """Return the value of environment variable ``name`` ('' if unset)."""
    return os.environ.get(name, "")


@server.tool()
def sleep(seconds: float) -> str:
    """Sleep, so a test can cancel or time out a call in flight."""
    time.sleep(seconds)
    return "slept"


if __name__ == "__main__":
    pid_file = os.environ.get("ECHO_SERVER_PID_FILE")
    if pid_file:
        with open(pid_file, "w", encoding="utf-8") as fh:
            fh.write(str(os.getpid()))
    server.run()

"""pulser-ops for AI agents: the control plane as a Model Context Protocol server
(``pulser-ops mcp``; docs/MCP.md).

``tools.py`` says what an agent may do (each template is a tool whose input schema is the
template's params schema, plus enqueue, get/wait/cancel/list runs and read artifacts), always
with the client the server was started with, so an operator's JWT gives an operator's rights
and nothing more. ``server.py`` serves it over stdio or streamable HTTP with the pinned ``mcp``
package.
"""

from __future__ import annotations

from .server import build_server, serve_http, serve_stdio
from .tools import Toolbox

__all__ = ["Toolbox", "build_server", "serve_http", "serve_stdio"]

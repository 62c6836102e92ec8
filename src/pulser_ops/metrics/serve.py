"""An HTTP endpoint for a registry (``/metrics``), on a thread of its own.

prometheus_client's own server: a blocking step, a busy event loop or a slow database never
delays a scrape of the worker's counters, and a scrape never touches the worker's threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Thread
from typing import TYPE_CHECKING

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(port: int, host: str = "0.0.0.0", registry: CollectorRegistry | None = None
          ) -> MetricsServer:
    """Serve ``registry`` (default: the process's) on ``host:port`` (0: any free port)."""
    from prometheus_client import REGISTRY, start_http_server

    try:
        server, thread = start_http_server(port, host, registry or REGISTRY)
    except OSError as e:
        raise ConfigurationError(
            f"cannot serve metrics on {host}:{port}: {e.strerror or e}"
        ) from None
    return MetricsServer(server, thread)

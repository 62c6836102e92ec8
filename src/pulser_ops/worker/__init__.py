"""The reference worker: claims runs, executes their steps, heartbeats, shuts down cleanly.

>>> from pulser_ops.worker import Worker
>>> worker = Worker(lanes="A,B", concurrency=4)       # connection from the environment
>>> @worker.handler("greet")
... def greet(ctx):
...     return {"hello": ctx.params.get("name", "world")}
>>> raise SystemExit(worker.run())

The command line equivalent is ``pulser-ops worker --lanes A,B --concurrency 4``.
"""

from __future__ import annotations

from .config import ENV_VARS, WorkerConfig, WorkerConfigError, load
from .loop import Worker

__all__ = ["ENV_VARS", "Worker", "WorkerConfig", "WorkerConfigError", "load"]

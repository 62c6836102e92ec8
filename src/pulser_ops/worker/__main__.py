"""``python -m pulser_ops.worker``: the same as ``pulser-ops worker``."""

from __future__ import annotations

from pulser_ops.cli.worker import worker_app

if __name__ == "__main__":
    worker_app()

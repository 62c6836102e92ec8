"""The reference worker (``pulser_ops.worker.Worker``) with the benchmark's no-op handler.

Same modes and output as pulser_loop.py, so the runner treats both alike: ``drain`` runs in
burst mode (exits when the queue is empty), ``pickup``/``idle`` run until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pulser_ops
from pulser_ops.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: gate.py
from gate import ready_then_wait


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dsn")
    p.add_argument("--mode", default="drain", choices=["drain", "pickup", "idle"])
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--out", default="/dev/null")
    p.add_argument("--ready", default="")
    p.add_argument("--go", default="", help="start only once this file exists (gate.py)")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    lock = threading.Lock()
    stats = {"first": 0.0, "last": 0.0, "n": 0}
    with open(a.out, "a") as out:
        worker = Worker(
            pulser_ops.connect(a.dsn), lanes="A", concurrency=a.concurrency, burst=a.mode == "drain"
        )

        # async def, like the peers' handlers: it runs on the worker's event loop
        @worker.handler("noop")
        async def noop(ctx: Any) -> None:
            now = time.time()
            if a.mode == "pickup":
                with lock:
                    out.write(json.dumps({"i": ctx.params["i"], "t": now}) + "\n")
                    out.flush()
                return
            with lock:
                stats["first"] = stats["first"] or now
                stats["n"] += 1
                stats["last"] = time.time()

        ready_then_wait(a.ready, a.go)
        worker.run()
        if a.mode == "drain":
            out.write(json.dumps(stats) + "\n")


if __name__ == "__main__":
    main()

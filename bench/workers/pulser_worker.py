"""The reference worker (``pulser_ops.worker.Worker``) with the benchmark's no-op handler.

Same modes and output as pulser_loop.py, so the runner treats both alike: ``drain`` runs in
burst mode (exits when the queue is empty), ``pickup``/``idle`` run until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from typing import Any

import pulser_ops
from pulser_ops.worker import Worker


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dsn")
    p.add_argument("--mode", default="drain", choices=["drain", "pickup", "idle"])
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--out", default="/dev/null")
    p.add_argument("--ready", default="")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    lock = threading.Lock()
    stats = {"first": 0.0, "last": 0.0, "n": 0}
    with open(a.out, "a") as out:
        worker = Worker(
            pulser_ops.connect(a.dsn), lanes="A", concurrency=a.concurrency, burst=a.mode == "drain"
        )

        @worker.handler("noop")
        def noop(ctx: Any) -> None:
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

        if a.ready:
            open(a.ready, "w").close()
        worker.run()
        if a.mode == "drain":
            out.write(json.dumps(stats) + "\n")


if __name__ == "__main__":
    main()

"""Procrastinate side of the benchmarks (runs in bench/.venv-peers; not importable from src/).

Same subcommands as pgq.py. Uses procrastinate's own async psycopg connector and its
documented APIs: ``defer_async`` / ``batch_defer_async`` and ``run_worker_async``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time

import peer_cli
import procrastinate

STATE: dict[str, object] = {"first": 0.0, "last": 0.0, "n": 0, "mode": "drain", "out": None}


def make_app(dsn: str) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop")
    async def noop(i: int) -> None:
        now = time.time()
        if STATE["mode"] == "pickup":
            fh = STATE["out"]
            fh.write(json.dumps({"i": i, "t": now}) + "\n")  # type: ignore[attr-defined]
            fh.flush()  # type: ignore[attr-defined]
            return
        if not STATE["first"]:
            STATE["first"] = now
        STATE["n"] = int(STATE["n"]) + 1  # type: ignore[call-overload]
        STATE["last"] = time.time()

    return app


async def install(a: argparse.Namespace) -> None:
    app = make_app(a.dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def enqueue(a: argparse.Namespace) -> None:
    app = make_app(a.dsn)
    task = app.tasks["noop"]
    async with app.open_async():
        t0 = time.perf_counter()
        if a.mode == "single":
            for i in range(a.n):
                await task.defer_async(i=i)
        else:
            for start in range(0, a.n, a.batch):
                k = min(a.batch, a.n - start)
                await task.batch_defer_async(*({"i": start + j} for j in range(k)))
        print(json.dumps({"seconds": time.perf_counter() - t0, "n": a.n}))


async def paced(a: argparse.Namespace) -> None:
    app = make_app(a.dsn)
    task = app.tasks["noop"]
    async with app.open_async():
        with open(a.out, "a") as fh:  # noqa: ASYNC230 - the process only ever appends a few lines
            for i in range(a.n):
                await task.defer_async(i=i)
                fh.write(json.dumps({"i": i, "t": time.time()}) + "\n")
                fh.flush()
                await asyncio.sleep(a.gap)


async def worker(a: argparse.Namespace) -> None:
    logging.disable(logging.INFO)
    STATE["mode"] = a.mode
    STATE["out"] = open(a.out, "a")  # noqa: ASYNC230, SIM115 - the process only ever appends a few lines
    app = make_app(a.dsn)
    async with app.open_async():
        await asyncio.to_thread(peer_cli.ready_then_wait, a.ready, a.go)
        await app.run_worker_async(
            concurrency=a.batch, wait=a.mode != "drain", install_signal_handlers=True
        )
    fh = STATE["out"]
    if a.mode == "drain":
        fh.write(
            json.dumps(
                {
                    "first": STATE["first"],
                    "last": STATE["last"],  # type: ignore[attr-defined]
                    "n": STATE["n"],
                }
            )
            + "\n"
        )
    fh.close()  # type: ignore[attr-defined]


def main() -> None:
    peer_cli.run({"install": install, "enqueue": enqueue, "paced": paced, "worker": worker})


if __name__ == "__main__":
    main()

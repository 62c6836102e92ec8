"""PgQueuer side of the benchmarks (runs in bench/.venv-peers; not importable from src/).

Subcommands: install, enqueue (single/batch), paced (enqueue N jobs GAP apart, writing each
commit time), worker (drain: exit when empty, dump first/last handler times; pickup: append
each handler start time; idle: just sit there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import timedelta

import asyncpg
import peer_cli
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.domain.types import QueueExecutionMode


async def _driver(dsn: str) -> tuple[asyncpg.Connection, AsyncpgDriver]:
    conn = await asyncpg.connect(dsn)
    return conn, AsyncpgDriver(conn)


async def install(a: argparse.Namespace) -> None:
    conn, driver = await _driver(a.dsn)
    await Queries(driver).install()
    await conn.close()


async def enqueue(a: argparse.Namespace) -> None:
    conn, driver = await _driver(a.dsn)
    q = Queries(driver)
    t0 = time.perf_counter()
    if a.mode == "single":
        for i in range(a.n):
            await q.enqueue("noop", str(i).encode(), 0)
    else:
        for start in range(0, a.n, a.batch):
            k = min(a.batch, a.n - start)
            await q.enqueue(["noop"] * k, [str(start + j).encode() for j in range(k)], [0] * k)
    print(json.dumps({"seconds": time.perf_counter() - t0, "n": a.n}))
    await conn.close()


async def paced(a: argparse.Namespace) -> None:
    conn, driver = await _driver(a.dsn)
    q = Queries(driver)
    with open(a.out, "a") as fh:  # noqa: ASYNC230 - the process only ever appends a few lines
        for i in range(a.n):
            await q.enqueue("noop", str(i).encode(), 0)
            fh.write(json.dumps({"i": i, "t": time.time()}) + "\n")
            fh.flush()
            await asyncio.sleep(a.gap)
    await conn.close()


async def worker(a: argparse.Namespace) -> None:
    conn, driver = await _driver(a.dsn)
    qm = QueueManager(Queries(driver))
    first: list[float] = []
    last = [0.0]
    count = [0]
    out = open(a.out, "a")  # noqa: ASYNC230, SIM115 - the process only ever appends a few lines

    @qm.entrypoint("noop")
    async def noop(job: object) -> None:
        now = time.time()
        if a.mode == "pickup":
            out.write(json.dumps({"i": int(job.payload.decode()), "t": now}) + "\n")  # type: ignore[attr-defined]
            out.flush()
            return
        if not first:
            first.append(now)
        count[0] += 1
        last[0] = time.time()

    await asyncio.to_thread(peer_cli.ready_then_wait, a.ready, a.go)
    mode = QueueExecutionMode.drain if a.mode == "drain" else QueueExecutionMode.continuous
    await qm.run(batch_size=a.batch, mode=mode, dequeue_timeout=timedelta(seconds=30))
    if a.mode == "drain":
        out.write(
            json.dumps({"first": first[0] if first else 0.0, "last": last[0], "n": count[0]}) + "\n"
        )
    out.close()
    await conn.close()


def main() -> None:
    peer_cli.run({"install": install, "enqueue": enqueue, "paced": paced, "worker": worker})


if __name__ == "__main__":
    main()

"""Realtime: a status change committed -> the subscriber holding it, on the direct transport.

The subscriber is ``AsyncClient.subscribe(runs=True)`` (LISTEN pulser_ops_changes, then a
read of the changed rows). A second thread cancels queued runs GAP apart with the sync client
and writes ``time.time()`` after each commit; the subscriber writes ``time.time()`` when the
change carrying ``status = cancelled`` reaches it.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pulser_ops
from common import Measurement, Target, log, percentile
from ctx import Ctx


def changer(
    url: str, ids: list[str], gap: float, sent: dict[str, float], start: threading.Event
) -> None:
    with pulser_ops.connect(url) as client:
        client.runs.list(limit=1)
        start.wait(30)
        for rid in ids:
            client.runs.cancel(rid, "bench")
            sent[rid] = time.time()
            time.sleep(gap)


async def once(ctx: Ctx) -> list[float]:
    s = ctx.sizes
    url = ctx.dbs.fresh("pulser")
    with pulser_ops.connect(url) as client:
        warm = client.runs.create("noop", {"i": -1})
        ids = [
            str(r.id)
            for r in client.runs.create_many(
                [{"template": "noop", "params": {"i": i}} for i in range(s.realtime_changes)]
            )
        ]
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    start = threading.Event()
    thread = threading.Thread(target=changer, args=(url, ids, s.pickup_gap, sent, start))
    thread.start()
    want = set(ids)
    async with await pulser_ops.aconnect(url) as aclient:
        sub = aclient.subscribe(runs=True)

        async def consume() -> None:
            async for change in sub:
                run = change.run
                if run is None or run.status != "cancelled":
                    continue
                rid = str(run.id)
                if rid == str(warm.id):
                    start.set()
                elif rid in want and rid not in got:
                    got[rid] = time.time()
                    if len(got) == len(want):
                        return

        task = asyncio.create_task(consume())
        await asyncio.sleep(1.0)  # subscribed and caught up
        await aclient.runs.cancel(warm.id, "warm-up")  # proves the feed is live
        await asyncio.wait_for(task, timeout=120)
    thread.join()
    return [(got[r] - sent[r]) * 1000 for r in ids if r in got and r in sent]


def run(ctx: Ctx) -> list[Measurement]:
    s = ctx.sizes
    p50 = Measurement(
        "realtime", "pulser-ops direct (LISTEN)", f"p50, {s.realtime_changes} status changes", "ms"
    )
    p99 = Measurement(
        "realtime",
        "pulser-ops direct (LISTEN)",
        f"p99, {s.realtime_changes} status changes",
        "ms",
        target=Target("<", 50.0, "< 50 ms"),
    )
    for _ in range(s.reps):
        lat = asyncio.run(once(ctx))
        p50.values.append(percentile(lat, 50))
        p99.values.append(percentile(lat, 99))
        log(f"realtime: p50 {p50.values[-1]:.2f} ms, p99 {p99.values[-1]:.2f} ms")
    return [p50, p99]

"""The realistic drain's work without a queue: ``true`` started, or the local server asked,
``--count`` times by ``--concurrency`` at once, the way the reference worker does it (a shell
step on a thread with its own process group; an http step on the event loop with one httpx
client). What a drain costs on top of this rate is what the queue and the worker add per step.

Writes ``{"first", "last", "n"}`` like the drain workers, after the start gate (gate.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: gate.py
from gate import ready_then_wait


def spawn_true() -> None:
    subprocess.run(
        ["true"], check=True, start_new_session=True, stdin=subprocess.DEVNULL, capture_output=True
    )


async def shell(count: int, concurrency: int) -> None:
    left = iter(range(count))

    async def lane() -> None:
        for _ in left:
            await asyncio.to_thread(spawn_true)

    await asyncio.gather(*(lane() for _ in range(concurrency)))


async def http(url: str, count: int, concurrency: int) -> None:
    left = iter(range(count))
    async with httpx.AsyncClient() as client:

        async def lane() -> None:
            for _ in left:
                (await client.get(url)).raise_for_status()

        await asyncio.gather(*(lane() for _ in range(concurrency)))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["shell", "http"])
    p.add_argument("--url", default="")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--out", required=True)
    p.add_argument("--ready", default="")
    p.add_argument("--go", default="")
    a = p.parse_args()
    ready_then_wait(a.ready, a.go)
    first = time.time()
    if a.kind == "shell":
        asyncio.run(shell(a.count, a.concurrency))
    else:
        asyncio.run(http(a.url, a.count, a.concurrency))
    with open(a.out, "a") as out:
        out.write(json.dumps({"first": first, "last": time.time(), "n": a.count}) + "\n")


if __name__ == "__main__":
    main()

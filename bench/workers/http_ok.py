"""A local HTTP server for the realistic drain's ``http`` step: every request gets ``200 ok``.

Stdlib asyncio, keep-alive, no parsing beyond the end of the headers, so the server costs far
less per request than a worker's step and is not what the benchmark measures. Prints its port
on stdout once it listens (``--port 0``: any free port).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve_one, "127.0.0.1", port, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    try:
        asyncio.run(main(p.parse_args().port))
    except KeyboardInterrupt:
        sys.exit(0)

"""A fixed-rate webhook load, run as its own process by the benchmark so that the latencies it
measures are the server's, not the stalls of a Python process that also serves the fakes.

    python scripts/harness/load.py URL RATE SECONDS   (prints one JSON object)

One asyncio thread writes each POST at its scheduled instant on one of a pool of keep-alive
connections (plain HTTP/1.1 over a socket: the server under test is on 127.0.0.1), so a slow
answer does not delay the next; latency is counted from the scheduled instant to the answer.
It used httpx in 32 threads: on the 2-core machine that cost 0.5 of a core, and their turns on
one GIL added to every latency it measured (POSTs to /healthz, answered 405 at once, at 300/s:
p99 96-133 ms). This one costs 0.17-0.2 of a core and measured 7-15 ms there.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

POOL = 32


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def post(self, head: bytes, body: bytes) -> int:
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        await self.reader.readexactly(length)
        return status


def request_head(host: str, path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def body(n: int) -> bytes:
    return json.dumps({"email": f"intake{n}@example.com", "first_name": f"In{n}"}).encode()


async def fixed_rate_posts(url: str, rate: float, seconds: float, warmup: int) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
    free: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(POOL):
        free.put_nowait(Connection(*await asyncio.open_connection(host, port)))
    total = max(1, round(rate * seconds))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def post(n: int, at: float) -> None:
        connection = await free.get()
        data = body(n)
        try:
            code = await connection.post(request_head(parts.netloc, path, len(data)), data)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            code = 0
            connection = Connection(*await asyncio.open_connection(host, port))
        latencies.append(loop.time() - at)
        statuses[code] += 1
        free.put_nowait(connection)

    loop = asyncio.get_running_loop()
    for n in range(warmup):
        connection = await free.get()
        data = body(total + n)
        await connection.post(request_head(parts.netloc, path, len(data)), data)
        free.put_nowait(connection)
    start = loop.time() + 0.5
    tasks = []
    for n in range(total):
        at = start + n / rate
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(post(n, at)))
    await asyncio.gather(*tasks)
    return {
        "requests": total,
        "warmup_requests": warmup,
        "latencies_ms": [round(v * 1000, 3) for v in latencies],
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def main(argv: list[str]) -> int:
    url, rate, seconds = argv[0], float(argv[1]), float(argv[2])
    print(json.dumps(asyncio.run(fixed_rate_posts(url, rate, seconds, warmup=50))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

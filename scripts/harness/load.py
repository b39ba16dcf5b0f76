"""A fixed-rate webhook load, run as its own process by the benchmark so that the latencies it
measures are the server's, not the stalls of a Python process that also serves the fakes.

    python scripts/harness/load.py URL RATE SECONDS   (prints one JSON object)

Each POST is fired at its scheduled instant from a pool of ready connections, so a slow answer
does not delay the next; latency is counted from the scheduled instant to the answer.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

POOL = 32


def fixed_rate_posts(url: str, rate: float, seconds: float, *, warmup: int = 50) -> dict[str, Any]:
    """`warmup` POSTs go first, one after another, and are not counted: they open the pool's
    connections and let both processes reach their steady state (threads, imports, caches)."""
    total = max(1, round(rate * seconds))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    clients: queue.SimpleQueue[httpx.Client] = queue.SimpleQueue()
    every = [httpx.Client(timeout=30) for _ in range(POOL)]
    for client in every:
        clients.put(client)

    def body(n: int) -> dict[str, str]:
        return {"email": f"intake{n}@example.com", "first_name": f"In{n}"}

    def post(n: int, at: float) -> None:
        client = clients.get()
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            code = client.post(url, json=body(n)).status_code
        except httpx.HTTPError:
            code = 0
        elapsed = time.monotonic() - at
        clients.put(client)
        with lock:
            latencies.append(elapsed)
            statuses[code] += 1

    for n in range(warmup):
        every[n % POOL].post(url, json=body(total + n))
    start = time.monotonic() + 0.5
    with ThreadPoolExecutor(POOL) as pool:
        for n in range(total):
            at = start + n / rate
            while at - time.monotonic() > 0.1:  # no more than 0.1 s ahead in the pool
                time.sleep(0.05)
            pool.submit(post, n, at)
    for client in every:
        client.close()
    return {
        "requests": total,
        "warmup_requests": warmup,
        "latencies_ms": [round(v * 1000, 3) for v in latencies],
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def main(argv: list[str]) -> int:
    url, rate, seconds = argv[0], float(argv[1]), float(argv[2])
    print(json.dumps(fixed_rate_posts(url, rate, seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

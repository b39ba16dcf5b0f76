"""What an idle worker costs Notion, counted over whole cadences on a fixed clock.

A worker's idle requests do not all come each poll: the Email Queue query does, the Templates
query for test sends and Preview links at most each 30 s, the lease renewal each 5 minutes and
the per-template counts each 10 minutes. A window of a few seconds of a running process sees
the first and misses the rest, so the idle cost is counted here over an hour of polls on a
`FakeClock`, the worker's own jobs included (tests/test_idle_cost.py, `make bench`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from notion_queue.clock import FakeClock
from notion_queue.template_counts import COUNTS_EVERY_SECONDS
from notion_queue.testing.fake_notion import FakeNotion, RecordedRequest
from notion_queue.worker import Worker

HOUR_SECONDS = 3600.0
# Once per process, not counted: the lease claim and the first full recount of the template
# counts, COUNTS_EVERY_SECONDS after start.
START_UP_SECONDS = COUNTS_EVERY_SECONDS


@dataclass(frozen=True)
class IdleCost:
    polls: int
    poll_interval: float
    by_call: dict[str, int]  # "query email_queue", "update_page", …

    @property
    def requests(self) -> int:
        return sum(self.by_call.values())

    @property
    def per_poll(self) -> float:
        return self.requests / self.polls

    def per_poll_of(self, call: str) -> float:
        return self.by_call.get(call, 0) / self.polls


def _call(request: RecordedRequest, data_sources: dict[str, str]) -> str:
    if request.kind != "query":
        return request.kind
    parts = request.path.split("/")  # /v1/data_sources/{id}/query
    data_source = parts[3] if len(parts) > 3 else "?"
    return f"query {data_sources.get(data_source, data_source)}"


def idle_cost(
    worker: Worker,
    fake: FakeNotion,
    clock: FakeClock,
    data_sources: dict[str, str],
    *,
    seconds: float = HOUR_SECONDS,
) -> IdleCost:
    """Poll as `Worker.run_forever` does (lease, cycle, wait a poll) through start-up (the
    lease claim, the first full recount), then for `seconds`, counting what Notion was asked
    in those. `data_sources` names the data source ids for the by-call split."""
    interval = worker.config.poll_interval

    def poll() -> None:
        if worker.lease.hold(wait=False) is not None:
            raise RuntimeError("another worker holds the lease")
        summary = worker.run_once()
        if summary.handled:
            raise RuntimeError(f"the queue is not idle: {summary.outcomes}")
        clock.advance(interval)

    for _ in range(round(START_UP_SECONDS / interval) + 1):
        poll()
    start = len(fake.requests)
    polls = max(1, round(seconds / interval))
    for _ in range(polls):
        poll()
    counted = Counter(_call(r, data_sources) for r in fake.requests[start:])
    return IdleCost(polls=polls, poll_interval=interval, by_call=dict(sorted(counted.items())))

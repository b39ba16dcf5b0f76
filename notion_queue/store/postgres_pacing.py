"""One rate limit shared by every worker of a PostgreSQL queue, on every host.

Resend limits the account, not the process: with each worker pacing itself, several workers'
requests collide past the limit and every 429 costs its Retry-After. So the slots are handed out
by the database. `rate_slots` holds one row per limit, `next_at`: when the request after the last
one handed out may go (a GCRA's theoretical arrival time). Taking a slot is one atomic statement,

    next_at = greatest(next_at, now) + 1/rate        -- the slot: the old next_at, or now
                                                     -- (earlier by a burst's allowance)

and the worker waits for its slot on its own clock. A 429's Retry-After moves `next_at` for
everyone (`hold_off`). Slots are time, not tokens: a worker killed after taking one has nothing
to give back, the others lose that one slot's turn at most.

Times are the workers' clocks, as for claims (store/postgres.py): hosts keep them in step (NTP).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from notion_queue.clock import Clock
from notion_queue.errors import RetryableError
from notion_queue.logs import get_logger
from notion_queue.store.postgres import PostgresStore

log = get_logger(__name__)


class PostgresPacer:
    """`rate` requests a second for `name` (e.g. "resend"), shared through `store`'s database.

    `burst`: requests that may go at once after a quiet spell, as a `TokenBucket` would allow.
    1 (the default) spaces every request 1/rate apart: the provider's own limiter then has its
    whole burst left for the jitter between hosts (a request taken in turn can arrive early,
    after a slower one). RetryableError while the database cannot be reached: nothing is sent.
    """

    def __init__(
        self, store: PostgresStore, clock: Clock, name: str, rate: float, *, burst: float = 1.0
    ) -> None:
        if rate <= 0:
            raise ValueError("a rate limit needs a positive rate")
        self.store = store
        self.clock = clock
        self.name = name
        self.interval = timedelta(seconds=1 / rate)
        # How far ahead of its turn a slot may fall: room for `burst` requests at once.
        self.tolerance = self.interval * (max(1.0, burst) - 1)

    def reserve(self) -> float:
        """Take the next slot: the seconds to wait before it starts (0: go now)."""
        now = self.clock.now()
        found = self.store._query(
            "INSERT INTO rate_slots AS s (name, next_at) VALUES (%(name)s, %(now)s + %(step)s)"
            " ON CONFLICT (name) DO UPDATE SET next_at = greatest(s.next_at, %(now)s) + %(step)s"
            " RETURNING next_at",
            {"name": self.name, "now": now, "step": self.interval},
        )
        slot: datetime = found[0]["next_at"] - self.interval - self.tolerance
        return max(0.0, (slot - now).total_seconds())

    def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            self.clock.sleep(wait)

    def hold_off(self, seconds: float) -> None:
        """No worker's slot before now + `seconds`, and no burst right after it. Best effort:
        with the database unreachable, the worker that got the 429 still waits it out."""
        now = self.clock.now()
        try:
            self.store._query(
                "INSERT INTO rate_slots AS s (name, next_at) VALUES (%(name)s, %(until)s)"
                " ON CONFLICT (name) DO UPDATE SET next_at = greatest(s.next_at, %(until)s)",
                {
                    "name": self.name,
                    "until": now + timedelta(seconds=max(0.0, seconds)) + self.tolerance,
                },
            )
        except RetryableError as exc:
            log.warning("hold_off_not_shared", limit=self.name, seconds=seconds, reason=str(exc))

"""Pacing and back-off as values: the pacer port, a token bucket, and the retry delay formula."""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field
from typing import Protocol

from notion_queue.clock import Clock


class Pacer(Protocol):
    """Hands out the moments to call a rate-limited API: one process's own `TokenBucket`, or
    slots shared by every worker of a PostgreSQL queue (store/postgres_pacing.py)."""

    def acquire(self) -> None:
        """Wait (on the clock) for the next slot, then take it."""
        ...

    def hold_off(self, seconds: float) -> None:
        """The API said wait `seconds` (Retry-After): no slot sooner, and no burst after."""
        ...


@dataclass
class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up. `take()` answers the wait in seconds (0 = go)."""

    clock: Clock
    rate: float
    burst: float

    def __post_init__(self) -> None:
        # A whole request must fit: a rate below 1/s with burst = rate would never save up
        # one token.
        self.burst = max(self.burst, 1.0)
        self._tokens = self.burst
        self._last = self.clock.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        with self._lock:
            now = self.clock.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate

    def remaining(self) -> float:
        """The tokens saved up now (for rate-limit headers and metrics)."""
        with self._lock:
            now = self.clock.monotonic()
            return max(0.0, min(self.burst, self._tokens + (now - self._last) * self.rate))

    def acquire(self) -> None:
        """Wait (on the clock) until a token is free, then take it."""
        while (wait := self.take()) > 0:
            self.clock.sleep(max(wait, 0.001))  # float dust must not spin the loop

    def hold_off(self, seconds: float) -> None:
        """The server said wait (Retry-After): spend the saved-up tokens so no burst follows."""
        with self._lock:
            self._tokens = min(self._tokens, 1 - seconds * self.rate)

    def retry_after_header(self, wait: float) -> str:
        """Retry-After as the real APIs send it: whole seconds, at least one."""
        return str(max(1, math.ceil(wait)))


@dataclass(frozen=True)
class Backoff:
    """delay(n) = min(cap, base · 2ⁿ) · U(0.5, 1.5): capped exponential back-off with jitter."""

    base: float = 1.0
    cap: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int) -> float:
        ceiling: float = min(self.cap, self.base * 2.0 ** max(0, attempt))
        return ceiling * self.rng.uniform(0.5, 1.5)

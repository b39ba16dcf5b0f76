"""One worker per queue across hosts: the lease in the store, claimed at start, renewed while
the worker runs, released when it stops.

`hold()` is what the worker calls before every cycle: it claims or renews the lease and waits
out a store that cannot be reached, saying so in the status file and the logs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from notion_queue import metrics
from notion_queue.clock import Clock
from notion_queue.errors import AccountError, RetryableError
from notion_queue.logs import get_logger
from notion_queue.pacing import Backoff
from notion_queue.worker_status import StatusFile

log = get_logger("notion_queue.worker")

LEASE_TTL_SECONDS = 900.0  # a worker that stops renewing loses the queue after 15 minutes
ACCOUNT_PROBE_SECONDS = 60.0  # while an account error pauses sending, try again this often


class LeaseStore(Protocol):
    def claim_lease(self, holder: str, now: datetime, ttl_seconds: float) -> str | None: ...

    def release_lease(self, holder: str) -> None: ...


def account_probe_delay(error: AccountError) -> float:
    """How long sending stays paused before the next try: ACCOUNT_PROBE_SECONDS, or until the
    moment the error names when that is later (a daily or monthly quota: the next UTC day, when
    Resend's daily count resets; probing sooner would only be refused again)."""
    return max(ACCOUNT_PROBE_SECONDS, error.retry_after or 0.0)


class Lease:
    """The queue's lease for `holder` (None: no lease is kept, as in tests and `--once` runs
    that set none). `pause` waits between tries; `stopped` (SIGTERM) cuts a wait short."""

    def __init__(
        self,
        store: LeaseStore,
        clock: Clock,
        status: StatusFile,
        stopped: threading.Event,
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.status = status
        self.stopped = stopped
        self.holder = holder
        # Waiting for an unreachable store: capped, and cut short by stop() (SIGTERM).
        self.backoff = Backoff(base=1, cap=60)
        self.pause: Callable[[float], object] = stopped.wait
        self._renew_at: float | None = None

    def keep(self) -> str | None:
        """Claim or renew the lease (one request every LEASE_TTL_SECONDS / 3). Answers None
        while this worker holds it, else the worker that does."""
        if self.holder is None:
            return None
        now = self.clock.monotonic()
        if self._renew_at is not None and now < self._renew_at:
            return None
        other = self.store.claim_lease(self.holder, self.clock.now(), LEASE_TTL_SECONDS)
        if other is None:
            self._renew_at = now + LEASE_TTL_SECONDS / 3
        return other

    def hold(self, *, wait: bool = True) -> str | None:
        """keep(), waiting out a store that cannot be reached (Notion down, 5xx, 429, timeouts)
        with capped back-off, saying so in the status file and the logs. Answers as keep() does
        (None also when stopped while waiting). A store that refuses us at start (bad token,
        database not found) raises: waiting would not mend it. A token refused later pauses
        sending and is probed every ACCOUNT_PROBE_SECONDS."""
        attempts = 0
        while True:
            try:
                other = self.keep()
            except RetryableError as exc:
                if not wait:
                    raise
                attempts += 1
                delay = self.backoff.delay(attempts)
                log.warning(
                    "store_unreachable",
                    reason=str(exc),
                    attempts=attempts,
                    retry_in=round(delay, 1),
                    action="waiting for the store before sending",
                )
                self.status.waiting_for_store(str(exc))
                self.pause(delay)
                if self.stopped.is_set():
                    return None
                continue
            except AccountError as exc:
                if self._renew_at is None or not wait:
                    raise  # at start: a setting to fix, not something to wait out
                # Mid-run (a token revoked): pause sending and probe, as a cycle would.
                log.error("account_error", reason=str(exc), action="sending paused until it works")
                metrics.SENDING_PAUSED.set(1)
                self.status.after_cycle({}, str(exc))
                self.pause(account_probe_delay(exc))
                if self.stopped.is_set():
                    return None
                continue
            if attempts:
                log.info("store_reached", after_attempts=attempts)
            return other

    def release(self) -> None:
        if self.holder is not None and self._renew_at is not None:
            self.store.release_lease(self.holder)
            self._renew_at = None

"""The drainer's share of the server's GIL, so webhooks are answered first.

The drainer thread and the event loop that answers webhooks take turns on one GIL. Since a
drained batch commits once, the drainer no longer waits on an fsync per event: left alone it
computes flat out, and a webhook's request waits for the GIL after each of its socket, thread
and fsync waits (on a busy machine for a CPU as well), which is most of a 202's time. Between
events the drainer sleeps, so it holds the GIL for at most `share` of the time it works: at the
default one half, a millisecond of work is followed by a millisecond that belongs to requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

DRAINER_GIL_SHARE = 0.5


class GilShare:
    """`pause()` after each piece of work: sleeps in proportion to the CPU it took (this
    thread's CPU time, so time spent waiting on the disk costs no pause)."""

    def __init__(
        self,
        share: float = DRAINER_GIL_SHARE,
        *,
        cpu_time: Callable[[], float] = time.thread_time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        self.share = share
        self._cpu_time = cpu_time
        self._sleep = sleep
        self._since = cpu_time()

    def pause(self) -> None:
        worked = self._cpu_time() - self._since
        rest = worked * (1 - self.share) / self.share
        if rest > 0:
            self._sleep(rest)
        self._since = self._cpu_time()

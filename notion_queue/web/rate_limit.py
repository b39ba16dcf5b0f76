"""Rate limits for unsigned website posts (ALLOW_UNSIGNED_WEBHOOKS in production), against
subscription bombing: per client address and per email address, in memory, on the injected clock.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass

from notion_queue.clock import Clock
from notion_queue.settings import Settings

MAX_KEYS = 10_000


class RateLimiter:
    """`limit` requests per `per` seconds for each key, allowing a burst of `limit`.

    GCRA (a token bucket kept as one number per key): each key remembers the time its
    allowance is whole again. A key whose time has passed is the same as a key never seen,
    so it is forgotten; past `max_keys` the least recently seen key is forgotten too, so an
    attacker rotating keys cannot grow memory without bound.
    """

    def __init__(self, *, per: float, limit: int, clock: Clock, max_keys: int = MAX_KEYS) -> None:
        self.interval = per / limit  # one request's share of the period
        self.tolerance = per - self.interval  # how far ahead a burst may run
        self.clock = clock
        self.max_keys = max_keys
        self._whole_at: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._whole_at)

    def wait_for(self, key: str) -> float:
        """0 and count the request when `key` may go on; else the seconds until it may."""
        now = self.clock.monotonic()
        self._forget_whole(now)
        whole_at = max(self._whole_at.get(key, now), now)
        wait = whole_at - now - self.tolerance
        if wait > 0:
            return wait
        self._whole_at[key] = whole_at + self.interval
        self._whole_at.move_to_end(key)
        while len(self._whole_at) > self.max_keys:
            self._whole_at.popitem(last=False)
        return 0.0

    def _forget_whole(self, now: float) -> None:
        """Drop keys from the least recently seen end while their allowance is whole again."""
        while self._whole_at:
            key, whole_at = next(iter(self._whole_at.items()))
            if whole_at > now:
                return
            del self._whole_at[key]


def client_key(host: str) -> str:
    """An IPv6 client is its /64: one host usually holds the whole block and can rotate in it."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def address_key(email: str) -> str:
    """One inbox: case and a +tag do not make another (victim+1@… lands with victim@…)."""
    local, _, domain = email.strip().lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


@dataclass(frozen=True)
class Refusal:
    retry_after: int  # whole seconds, for the Retry-After header
    message: str


class UnsignedLimits:
    """UNSIGNED_REQUESTS_PER_MINUTE_PER_CLIENT and UNSIGNED_REQUESTS_PER_HOUR_PER_ADDRESS."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.per_client = RateLimiter(
            per=60, limit=settings.unsigned_requests_per_minute_per_client, clock=clock
        )
        self.per_address = RateLimiter(
            per=3600, limit=settings.unsigned_requests_per_hour_per_address, clock=clock
        )

    def check_client(self, host: str) -> Refusal | None:
        wait = self.per_client.wait_for(client_key(host))
        return _refusal(wait, "this client", "UNSIGNED_REQUESTS_PER_MINUTE_PER_CLIENT")

    def check_address(self, email: str) -> Refusal | None:
        wait = self.per_address.wait_for(address_key(email))
        return _refusal(wait, "this email address", "UNSIGNED_REQUESTS_PER_HOUR_PER_ADDRESS")


def _refusal(wait: float, who: str, setting: str) -> Refusal | None:
    if wait <= 0:
        return None
    seconds = max(1, math.ceil(wait))
    return Refusal(
        seconds,
        f"too many unsigned requests for {who} ({setting}); try again in {seconds} s",
    )

"""Pacing below one request a second: several workers sharing Resend's 2 requests/s set
RESEND_REQUESTS_PER_SECOND=0.5 each, and must still send (one every two seconds)."""

from __future__ import annotations

from notion_queue.clock import FakeClock
from notion_queue.pacing import TokenBucket


def test_a_rate_below_one_a_second_lets_a_request_through_every_one_over_rate_seconds(
    clock: FakeClock,
) -> None:
    bucket = TokenBucket(clock, 0.5, 1.0)  # as ResendMailer builds it: no burst

    first = bucket.take()
    clock.advance(1.0)
    too_soon = bucket.take()
    clock.advance(1.0)
    second = bucket.take()

    assert first == 0.0 and too_soon > 0 and second == 0.0

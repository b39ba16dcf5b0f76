"""The mailer paces itself under Resend's limit, whatever burst Resend allows: Resend documents
a number of requests a second, not how many may come at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import resend

from notion_queue.clock import FakeClock
from notion_queue.mail.base import OutgoingEmail
from notion_queue.mail.resend_mailer import ResendMailer
from notion_queue.testing.fake_resend import FakeResend


def email(n: int) -> OutgoingEmail:
    return OutgoingEmail(
        sender="BusinessX <hello@businessx.com>",
        to=f"reader{n}@example.com",
        subject=f"Hello {n}",
        html=f"<p>Hello {n}</p>",
        text=f"Hello {n}",
        idempotency_key=f"notion-queue/row-{n:04d}/digest{n}",
    )


@pytest.fixture
def restore_resend_globals() -> Iterator[None]:
    saved = (resend.api_key, resend.api_url, resend.default_http_client)
    yield
    resend.api_key, resend.api_url, resend.default_http_client = saved


@pytest.mark.usefixtures("restore_resend_globals")
def test_a_backlog_sent_at_the_full_rate_never_trips_a_smaller_burst(clock: FakeClock) -> None:
    # 20 a second, but never more than 10 at once (the bench's --quick Resend)
    fake = FakeResend(clock, rate_limit=20, burst=10)
    mailer = ResendMailer("re_test_key", clock, transport=fake.transport(), requests_per_second=20)
    started = clock.monotonic()

    for n in range(60):
        mailer.send(email(n))
    took = clock.monotonic() - started
    mailer.close()

    assert fake.count(429) == 0
    assert len(fake.sent) == 60
    assert took <= 60 / 20  # the full rate all the same

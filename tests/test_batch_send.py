"""Resend's batch API: up to 100 emails a request under one key that names exactly the set, all
or nothing, each email with its own tags and headers; the outbox keeps the same promises."""

from __future__ import annotations

from pathlib import Path

import pytest

from notion_queue.clock import FakeClock
from notion_queue.errors import MaybeWritten, PermanentError
from notion_queue.mail.base import BatchMailer, OutgoingEmail
from notion_queue.mail.batch import Batch, batch_key, batch_problem
from notion_queue.mail.outbox import OutboxMailer, sent_messages
from notion_queue.mail.resend_mailer import ResendMailer
from notion_queue.testing.fake_resend import FakeResend


class Killed(BaseException):
    """The worker process dying (SIGKILL): nothing after this point runs."""


def email(n: int, to: str | None = None) -> OutgoingEmail:
    address = to or f"reader{n}@example.com"
    return OutgoingEmail(
        sender="BusinessX <hello@businessx.com>",
        to=address,
        subject=f"Hello {n}",
        html=f"<p>Hello {n}</p>",
        text=f"Hello {n}",
        idempotency_key=f"notion-queue/row-{n:04d}/digest{n}",
        headers={
            "List-Unsubscribe": f"<https://funnel.businessx.com/unsubscribe?token=t{n}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        tags={"sequence": "lead_nurture", "template": f"lead_nurture_email_{n % 5 + 1}"},
    )


def batch_of(numbers: range | list[int]) -> Batch:
    return Batch.of((f"row-{n:04d}", email(n)) for n in numbers)


def test_both_mailers_can_send_batches(mailer: ResendMailer, tmp_path: Path) -> None:
    assert isinstance(mailer, BatchMailer)
    assert isinstance(OutboxMailer(tmp_path, FakeClock()), BatchMailer)


def test_a_batch_is_one_request_and_each_email_keeps_its_headers_and_tags(
    mailer: ResendMailer, fake_resend: FakeResend
) -> None:
    batch = batch_of(range(100))

    results = mailer.send_batch(batch.emails, batch.idempotency_key)

    assert fake_resend.count() == 1
    assert [r.message_id for r in results] == [e.id for e in fake_resend.sent]
    assert [e.to for e in fake_resend.sent] == [(f"reader{n}@example.com",) for n in range(100)]
    last = fake_resend.sent[-1]
    assert (
        last.headers["List-Unsubscribe"] == "<https://funnel.businessx.com/unsubscribe?token=t99>"
    )
    assert last.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert last.tags == {"sequence": "lead_nurture", "template": "lead_nurture_email_5"}
    assert {e.idempotency_key for e in fake_resend.sent} == {batch.idempotency_key}


def test_a_crash_in_the_middle_of_a_batch_sends_nothing_twice(
    mailer: ResendMailer, fake_resend: FakeResend, clock: FakeClock
) -> None:
    batch = batch_of(range(50))
    fake_resend.fail_next(timeout=True, commit=True)  # sent, but the answer never came back
    with pytest.raises(MaybeWritten):
        mailer.send_batch(batch.emails, batch.idempotency_key)
    first_ids = [e.id for e in fake_resend.sent]
    assert len(first_ids) == 50

    # The worker dies before marking anything; the next one re-sends the same batch.
    clock.advance(seconds=30)
    again = Batch.of(reversed([(f"row-{n:04d}", email(n)) for n in range(50)]))
    results = mailer.send_batch(again.emails, again.idempotency_key)

    assert [r.message_id for r in results] == first_ids
    assert len(fake_resend.sent) == 50


def test_a_regrouped_batch_under_the_same_key_is_refused_not_sent(
    mailer: ResendMailer, fake_resend: FakeResend
) -> None:
    batch = batch_of(range(10))
    mailer.send_batch(batch.emails, batch.idempotency_key)

    with pytest.raises(PermanentError, match="invalid_idempotent_request"):
        mailer.send_batch(batch_of(range(9)).emails, batch.idempotency_key)
    assert len(fake_resend.sent) == 10


def test_the_batch_key_names_exactly_the_set_of_rows_and_emails() -> None:
    items = [(f"row-{n:04d}", email(n)) for n in range(5)]
    assert batch_key(items) == batch_key(reversed(items))
    assert batch_key(items) != batch_key(items[:4])
    edited = [*items[:4], ("row-0004", email(44))]  # the same row, another message
    assert batch_key(items) != batch_key(edited)
    assert len(batch_key(items)) <= 256
    with pytest.raises(ValueError, match="twice"):
        Batch.of([items[0], items[0]])
    with pytest.raises(ValueError, match="1 to 100"):
        Batch.of((f"row-{n:04d}", email(n)) for n in range(101))


def test_one_bad_address_would_fail_the_whole_batch_so_it_is_kept_out(
    mailer: ResendMailer, fake_resend: FakeResend
) -> None:
    bad = email(7, to="not an address")
    assert batch_problem(bad) is not None
    assert all(batch_problem(email(n)) is None for n in range(5))

    with pytest.raises(PermanentError):  # what happens if one slips in: nothing is sent
        mailer.send_batch([email(1), bad, email(2)], "notion-queue-batch/with-a-bad-one")
    assert fake_resend.sent == []


def test_a_bad_tag_or_header_is_kept_out_of_a_batch() -> None:
    tagged = OutgoingEmail(**{**email(1).__dict__, "tags": {"sequence": "not ok!"}})
    folded = OutgoingEmail(**{**email(1).__dict__, "headers": {"X-Note": "a\r\nBcc: x@y.z"}})
    assert batch_problem(tagged) == "the tag 'sequence' is not a valid Resend tag"
    assert batch_problem(folded) == "the header 'X-Note' is not a valid header"


def test_batches_deliver_at_least_150_emails_a_second_at_2_requests_a_second(
    mailer: ResendMailer, fake_resend: FakeResend, clock: FakeClock
) -> None:
    start = clock.monotonic()
    for first in range(0, 1000, 100):
        batch = batch_of(range(first, first + 100))
        mailer.send_batch(batch.emails, batch.idempotency_key)
    elapsed = clock.monotonic() - start  # the mailer waits on the clock for its rate limit

    assert len(fake_resend.sent) == 1000
    assert fake_resend.count(429) == 0
    assert 1000 / elapsed >= 150


def test_the_outbox_writes_one_file_per_email_once_even_when_killed_mid_batch(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = OutboxMailer(tmp_path / "outbox", clock)
    batch = batch_of(range(5))
    real_send = outbox.send
    calls = 0

    def dies_after_three(message: OutgoingEmail) -> object:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise Killed
        return real_send(message)

    monkeypatch.setattr(outbox, "send", dies_after_three)
    with pytest.raises(Killed):
        outbox.send_batch(batch.emails, batch.idempotency_key)
    assert len(sent_messages(tmp_path / "outbox")) == 3
    monkeypatch.undo()

    restarted = OutboxMailer(tmp_path / "outbox", clock)
    results = restarted.send_batch(batch.emails, batch.idempotency_key)
    again = restarted.send_batch(batch.emails, batch.idempotency_key)

    assert len(sent_messages(tmp_path / "outbox")) == 5
    assert [r.replayed for r in results] == [True, True, True, False, False]
    assert [r.message_id for r in again] == [r.message_id for r in results]
    with pytest.raises(PermanentError, match="different"):
        restarted.send_batch(batch_of(range(4)).emails, batch.idempotency_key)

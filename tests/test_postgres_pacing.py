"""Resend's rate shared by every worker of a PostgreSQL queue (real PostgreSQL): the slots to send
are handed out by the database, so RESEND_REQUESTS_PER_SECOND is the account's rate however many
workers run on however many hosts, and a 429 one worker gets holds the others off too."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import resend
from structlog.testing import capture_logs

from notion_queue.clock import FakeClock
from notion_queue.errors import RateLimited, RetryableError
from notion_queue.mail.base import OutgoingEmail
from notion_queue.mail.resend_mailer import ResendMailer
from notion_queue.pacing import TokenBucket
from notion_queue.settings import Settings
from notion_queue.store.postgres import PostgresStore
from notion_queue.store.postgres_pacing import PostgresPacer
from notion_queue.testing.fake_resend import FakeResend
from notion_queue.wiring import build_mailer
from scripts.harness.pg_cluster import Cluster
from tests.conftest import T0

RATE = 2.0


@pytest.fixture
def hosts(pg_cluster: Cluster, postgres_store: PostgresStore) -> Iterator[list[PostgresStore]]:
    """Three workers' own connections to the one queue (as if on three hosts)."""
    stores = [PostgresStore(pg_cluster.url()) for _ in range(3)]
    yield stores
    for store in stores:
        store.close()


@pytest.fixture
def keep_resend_globals() -> Iterator[None]:
    saved = (resend.api_key, resend.api_url, resend.default_http_client)
    yield
    resend.api_key, resend.api_url, resend.default_http_client = saved


def email_to(address: str) -> OutgoingEmail:
    return OutgoingEmail(
        sender="BusinessX <hello@businessx.com>",
        to=address,
        subject="Hello",
        html="<p>Hello</p>",
        text="Hello",
        idempotency_key=f"key/{address}",
    )


def postgres_settings() -> Settings:
    return Settings(
        mail_backend="resend",
        resend_api_key="re_test_key",
        resend_requests_per_second=RATE,
        queue_backend="postgres",
        database_url="postgresql://nq@/nq?host=/tmp",
    )


def test_three_workers_on_three_hosts_share_the_accounts_rate(hosts: list[PostgresStore]) -> None:
    # Each worker has its own clock (its host's), which moves only while it waits for a slot.
    slots: list[datetime] = []
    lock = threading.Lock()

    def send_twenty(store: PostgresStore) -> None:
        clock = FakeClock(T0)
        pacer = PostgresPacer(store, clock, "resend", RATE)
        for _ in range(20):
            pacer.acquire()
            with lock:
                slots.append(clock.now())

    threads = [threading.Thread(target=send_twenty, args=(store,)) for store in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    per_second = Counter(int((slot - T0).total_seconds()) for slot in slots)
    assert set(per_second.values()) == {2}  # never more than the account's 2 requests/s ...
    assert sorted(slots) == [T0 + timedelta(seconds=n / RATE) for n in range(60)]  # ... nor less


def test_a_429_one_worker_gets_holds_off_every_worker(hosts: list[PostgresStore]) -> None:
    clock = FakeClock(T0)
    limited, other = (PostgresPacer(store, clock, "resend", RATE) for store in hosts[:2])
    limited.acquire()

    limited.hold_off(3.0)  # Resend answered 429 with Retry-After: 3
    other.acquire()
    assert clock.now() == T0 + timedelta(seconds=3)
    other.acquire()  # no burst saved up behind the hold-off
    assert clock.now() == T0 + timedelta(seconds=3.5)


def test_a_worker_killed_after_taking_its_slot_costs_the_others_one_slot(
    hosts: list[PostgresStore],
) -> None:
    clock = FakeClock(T0)
    killed, survivor = (PostgresPacer(store, clock, "resend", RATE) for store in hosts[:2])
    killed.acquire()  # ... and dies before sending: nothing to give back, the slot was time

    survivor.acquire()
    survivor.acquire()
    assert clock.now() == T0 + timedelta(seconds=1.0)


def test_postgres_workers_built_from_the_same_settings_never_exceed_the_accounts_limit(
    hosts: list[PostgresStore], keep_resend_globals: None
) -> None:
    clock = FakeClock(T0)
    fake = FakeResend(clock, api_key="re_test_key", rate_limit=RATE, burst=RATE)
    settings = postgres_settings()
    mailers = [
        build_mailer(settings, clock, resend_transport=fake.transport(), store=store)
        for store in hosts
    ]
    assert all(isinstance(mailer, ResendMailer) for mailer in mailers)

    for n in range(12):
        mailers[n % 3].send_batch([email_to(f"reader{n}@example.com")], f"batch/{n}")

    assert [r.status for r in fake.requests] == [200] * 12  # no 429
    assert clock.now() == T0 + timedelta(seconds=11 / RATE)


def test_sqlite_and_notion_workers_keep_their_own_bucket(keep_resend_globals: None) -> None:
    clock = FakeClock(T0)
    for backend in ("sqlite", "notion"):
        settings = postgres_settings().model_copy(update={"queue_backend": backend})

        mailer = build_mailer(settings, clock)

        assert isinstance(mailer, ResendMailer) and isinstance(mailer.pacer, TokenBucket)
        mailer.close()


def test_a_429_through_the_mailer_delays_the_other_workers_send(
    hosts: list[PostgresStore], keep_resend_globals: None
) -> None:
    clock = FakeClock(T0)
    fake = FakeResend(clock, api_key="re_test_key", rate_limit=None)
    settings = postgres_settings()
    limited, other = (
        build_mailer(settings, clock, resend_transport=fake.transport(), store=store)
        for store in hosts[:2]
    )
    assert isinstance(limited, ResendMailer) and isinstance(other, ResendMailer)
    fake.fail_next(status=429, name="rate_limit_exceeded", retry_after=4)

    with pytest.raises(RateLimited):
        limited.send(email_to("first@example.com"))
    other.send(email_to("second@example.com"))

    assert [r.status for r in fake.requests] == [429, 200]
    assert clock.now() == T0 + timedelta(seconds=4)


def test_pacing_while_the_database_is_down_sends_nothing_and_shows_no_password(
    tmp_path: Path, keep_resend_globals: None
) -> None:
    clock = FakeClock(T0)
    fake = FakeResend(clock, api_key="re_test_key", rate_limit=None)
    url = f"postgresql://nq:hunter2-secret@/nq?host={tmp_path}&connect_timeout=1"
    down = PostgresStore(url, connect_timeout=1.0)
    mailer = ResendMailer(
        "re_test_key",
        clock,
        transport=fake.transport(),
        pacer=PostgresPacer(down, clock, "resend", RATE),
    )

    with pytest.raises(RetryableError) as caught:
        mailer.send_batch([email_to("reader@example.com")], "batch/1")

    assert fake.requests == []  # the batch stays pending; the next cycle sends it
    assert "hunter2" not in str(caught.value)


def test_a_429_is_still_honoured_when_the_database_is_down_for_the_hold_off(
    hosts: list[PostgresStore], tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    pacer = PostgresPacer(hosts[0], clock, "resend", RATE)
    pacer.acquire()
    pacer.store = PostgresStore(f"postgresql://nq@/nq?host={tmp_path}", connect_timeout=1.0)

    with capture_logs() as logs:
        pacer.hold_off(3.0)  # the 429 itself still reaches the worker, which waits it out

    assert [e["event"] for e in logs] == ["hold_off_not_shared"]


def test_the_shared_pace_allows_no_more_burst_than_a_workers_own_bucket(
    hosts: list[PostgresStore],
) -> None:
    clock = FakeClock(T0)
    pacer = PostgresPacer(hosts[0], clock, "resend", RATE, burst=RATE)
    clock.advance(60)  # idle: as much saved up as there ever is

    for _ in range(4):
        pacer.acquire()

    assert clock.now() == T0 + timedelta(seconds=61)  # 2 at once, then 2 a second

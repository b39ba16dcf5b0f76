"""The PostgreSQL queue's own promises: several workers share one queue without sending a row
twice, a killed worker's rows come back, the schema is made once on first start."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from notion_queue.clock import FakeClock
from notion_queue.entry import worker_main
from notion_queue.errors import ConfigError, RetryableError
from notion_queue.mail.outbox import OutboxMailer, sent_messages
from notion_queue.models import ContactData, Status
from notion_queue.settings import load_settings
from notion_queue.store.postgres import PostgresStore
from notion_queue.store.postgres_schema import MIGRATIONS
from notion_queue.transitions import change_status
from notion_queue.wiring import store_connector
from scripts.harness.pg_cluster import Cluster
from tests.conftest import T0, WorkerFactory, new_row

TTL = 60.0


def add_due_rows(store: PostgresStore, count: int) -> list[str]:
    return [
        store.add_row(
            new_row(email=f"lead{i}@example.com", scheduled_time=T0 - timedelta(seconds=count - i))
        ).id
        for i in range(count)
    ]


def test_two_workers_never_claim_the_same_row(postgres_store: PostgresStore) -> None:
    ids = add_due_rows(postgres_store, 10)

    a = postgres_store.claim_due("worker A", T0, 4, TTL)
    b = postgres_store.claim_due("worker B", T0, 4, TTL)
    c = postgres_store.claim_due("worker C", T0, 4, TTL)

    assert [r.id for r in a] == ids[:4]  # earliest first
    assert [r.id for r in b] == ids[4:8]
    assert [r.id for r in c] == ids[8:]
    assert postgres_store.claim_due("worker D", T0, 4, TTL) == []


def test_claims_from_many_threads_at_once_hand_out_each_row_once(
    postgres_store: PostgresStore,
) -> None:
    ids = add_due_rows(postgres_store, 200)
    claimed: list[str] = []
    lock = threading.Lock()

    def claim(worker: str) -> None:
        mine: set[str] = set()
        while rows := postgres_store.claim_due(worker, T0, 7, TTL, skip=mine):
            mine.update(r.id for r in rows)
            with lock:
                claimed.extend(r.id for r in rows)

    threads = [threading.Thread(target=claim, args=(f"worker {n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(claimed) == Counter(ids)


def test_a_killed_workers_rows_come_back_when_its_claim_lapses(
    postgres_store: PostgresStore,
) -> None:
    ids = add_due_rows(postgres_store, 3)
    postgres_store.claim_due("killed worker", T0, 10, TTL)  # ... and never marks them

    assert postgres_store.claim_due("survivor", T0 + timedelta(seconds=TTL - 1), 10, TTL) == []
    assert postgres_store.next_due_time(T0) == T0 + timedelta(seconds=TTL)
    back = postgres_store.claim_due("survivor", T0 + timedelta(seconds=TTL), 10, TTL)
    assert [r.id for r in back] == ids


def test_a_row_paused_and_resumed_is_free_to_claim_at_once(
    postgres_store: PostgresStore,
) -> None:
    row = postgres_store.add_row(new_row())
    claimed = postgres_store.claim_due("worker A", T0, 1, TTL)
    assert [r.id for r in claimed] == [row.id]

    paused = change_status(postgres_store, claimed[0], Status.PAUSED)
    assert paused is not None
    change_status(postgres_store, paused, Status.QUEUED)

    assert [r.id for r in postgres_store.claim_due("worker B", T0, 1, TTL)] == [row.id]


def test_three_workers_one_killed_send_every_row_exactly_once(
    postgres_store: PostgresStore,
    make_worker: WorkerFactory,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    ids = add_due_rows(postgres_store, 30)
    outbox = OutboxMailer(tmp_path / "outbox", clock)
    workers = [make_worker(postgres_store, outbox, batch_size=4, claim_ttl=TTL) for _ in range(3)]
    # A fourth worker claimed a batch and was killed before it sent anything.
    postgres_store.claim_due("killed", clock.now(), 4, TTL)

    for worker in workers:  # each takes batches until none is left it may claim
        worker.run_once()
    assert {postgres_store.get_row(i).status for i in ids[4:]} == {Status.SENT}
    assert {postgres_store.get_row(i).status for i in ids[:4]} == {Status.QUEUED}
    clock.advance(TTL)
    summaries = [worker.run_once() for worker in workers]

    assert sum(s["sent"] for s in summaries) == 4
    assert {postgres_store.get_row(i).status for i in ids} == {Status.SENT}
    assert len(sent_messages(outbox.folder)) == 30


def test_the_schema_is_made_once_when_several_processes_start_together(
    pg_cluster: Cluster,
) -> None:
    with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS fresh")
        admin.execute("CREATE DATABASE fresh")
    errors: list[BaseException] = []

    def start() -> None:
        try:
            store = PostgresStore(pg_cluster.url("fresh"))
            store.connect()
            store.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with psycopg.connect(pg_cluster.url("fresh")) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == [version for version, _ in MIGRATIONS]


def test_an_unreachable_server_is_waited_for_and_the_password_never_shown(
    tmp_path: Path,
) -> None:
    url = f"postgresql://nq:hunter2-secret@/nq?host={tmp_path}&connect_timeout=1"
    store = PostgresStore(url, connect_timeout=1.0)  # no connection yet: the server starts
    connector = store_connector(store)
    assert connector is not None  # the drainer reaches the store through it, with back-off

    with pytest.raises(RetryableError) as caught:
        connector()
    with pytest.raises(RetryableError):
        store.unsubscribed_emails()  # a worker's cycle: interrupted, tried again next poll
    store.close()

    assert "hunter2" not in str(caught.value)
    assert "DATABASE_URL" in str(caught.value)


def test_postgres_needs_a_database_url_and_an_empty_one_is_unset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL is required when QUEUE_BACKEND=postgres"):
        load_settings(queue_backend="postgres", database_url="  ", state_dir=tmp_path)


@pytest.fixture
def worker_env(
    pg_cluster: Cluster,
    postgres_store: PostgresStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    state = tmp_path / "state"
    monkeypatch.setenv("QUEUE_BACKEND", "postgres")
    monkeypatch.setenv("DATABASE_URL", pg_cluster.url())
    monkeypatch.setenv("MAIL_BACKEND", "outbox")
    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("STATE_DIR", str(state))
    yield state


def test_a_worker_on_postgres_takes_neither_the_lock_file_nor_the_lease(
    worker_env: Path, postgres_store: PostgresStore, tmp_path: Path
) -> None:
    postgres_store.add_row(new_row(scheduled_time=T0))

    assert worker_main(["--once"]) == 0

    [row] = list(postgres_store.all_rows())
    assert row.status is Status.SENT
    assert len(sent_messages(tmp_path / "outbox")) == 1
    assert list(worker_env.glob("worker-*.lock")) == []  # a second worker here may start
    assert postgres_store.claim_lease("someone else", T0, 60) is None  # nobody holds the lease


def test_a_worker_takes_back_its_own_rows_after_an_account_error(
    postgres_store: PostgresStore,
) -> None:
    [row] = [postgres_store.add_row(new_row())]
    assert [r.id for r in postgres_store.claim_due("worker A", T0, 5, TTL)] == [row.id]
    # The cycle stopped (a revoked key) before the row was sent; the key works again.

    again = postgres_store.claim_due("worker A", T0 + timedelta(seconds=1), 5, TTL)
    others = postgres_store.claim_due("worker B", T0 + timedelta(seconds=1), 5, TTL)

    assert [r.id for r in again] == [row.id] and others == []
    assert postgres_store.claim_due("worker A", T0, 5, TTL, skip={row.id}) == []


def test_a_database_from_before_time_zones_gains_the_column_and_keeps_its_contacts(
    pg_cluster: Cluster,
) -> None:
    with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS before_zones")
        admin.execute("CREATE DATABASE before_zones")
    with psycopg.connect(pg_cluster.url("before_zones"), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_version ("
            " version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for version, sql in MIGRATIONS[:3]:  # the release before contacts had a time zone
            conn.execute(sql.encode())
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        conn.execute("INSERT INTO contacts (id, email) VALUES ('c1', 'ann@example.com')")

    store = PostgresStore(pg_cluster.url("before_zones"))
    try:
        kept = store.find_contact("ann@example.com")
        assert kept is not None and kept.time_zone == ""
        store.upsert_contact(ContactData(email="ann@example.com", time_zone="Asia/Tokyo"))
        again = store.find_contact("ann@example.com")
        assert again is not None and again.time_zone == "Asia/Tokyo" and again.id == "c1"
    finally:
        store.close()

"""Intake through Notion outages and restarts, and a /readyz that tells the truth (issue 11
§1, §2): on a fixed clock, with the fake Notion and real SQLite files (overwritten pages for a
corrupt one, `PRAGMA max_page_count` for a full one)."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from notion_queue.clock import FakeClock
from notion_queue.errors import AccountError, ConfigError, CorruptFile
from notion_queue.intake.drainer import Drainer
from notion_queue.intake.journal import Journal
from notion_queue.intake.processor import IntakeProcessor
from notion_queue.pacing import Backoff
from notion_queue.sequences import Catalog
from notion_queue.settings import Settings
from notion_queue.store.notion import NotionStore
from notion_queue.store.sqlite import SqliteStore
from notion_queue.unsubscribe import UnsubscribeTokens
from notion_queue.web.app import create_app
from notion_queue.web.readiness import STALL_SECONDS
from notion_queue.worker import Worker
from tests.conftest import (
    NOTION_TOKEN,
    T0,
    NotionWorld,
    WorkerFactory,
    make_notion_world,
    new_row,
)

SIGNUP = {"email": "sarah@example.com", "first_name": "Sarah"}


def lazy_store(world: NotionWorld, **ids: str) -> NotionStore:
    """A NotionStore as a restarted process builds it: nothing resolved yet."""
    databases = {
        "email_queue_db_id": world.database_ids["Email Queue"],
        "templates_db_id": world.database_ids["Templates"],
        "contacts_db_id": world.database_ids["Contacts"],
        "workers_db_id": world.database_ids["Workers"],
    }
    databases.update(ids)
    return NotionStore(world.store.gateway, **databases)


def signups(journal: Journal, count: int) -> None:
    for i in range(count):
        journal.append(
            "christmas-signup", f"k{i}", {"email": f"lead{i}@example.com", "first_name": "A"}, T0
        )


def client_for(
    tmp_path: Path, journal: Journal, drainer: Drainer | None, clock: FakeClock, **extra: Any
) -> TestClient:
    app = create_app(
        Settings(state_dir=tmp_path / "state"),
        journal=journal,
        drainer=drainer,
        clock=clock,
        **extra,
    )
    return TestClient(app)


def overwrite_pages(path: Path, first: int, last: int) -> None:
    """Corrupt a real SQLite file the way a bad disk or a stray write does."""
    page_size = 4096
    with path.open("r+b") as f:
        for page in range(first, last + 1):
            f.seek(page * page_size)
            f.write(bytes([0xA5]) * page_size)


def filled_journal(path: Path, events: int = 300) -> None:
    journal = Journal(path)
    for i in range(events):
        journal.append("christmas-signup", f"key-{i}", {"email": f"l{i}@example.com"}, T0)
    journal.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# §1 the store is reached when Notion answers, not at start-up


def test_a_notion_store_is_built_while_notion_is_down(clock: FakeClock) -> None:
    world = make_notion_world(clock)
    world.fake.take_down()

    store = lazy_store(world)  # no request, so no failure

    assert world.fake.requests == []
    world.fake.bring_up()
    assert store.rows_for_email("sarah@example.com") == []


def test_events_wait_while_notion_is_down_at_start_and_become_rows_when_it_returns(
    clock: FakeClock, tmp_path: Path, catalog: Catalog
) -> None:
    world = make_notion_world(clock)
    world.fake.take_down()
    store = lazy_store(world)
    journal = Journal(tmp_path / "intake.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock, connect=store.connect)
    client = client_for(tmp_path, journal, drainer, clock)

    answers = [
        client.post("/webhook/christmas-signup", json={"email": f"lead{i}@example.com"})
        for i in range(3)
    ]
    for _ in range(3):
        assert drainer.drain_once() == 0
        clock.advance(30)
    ready = client.get("/readyz")

    assert [a.status_code for a in answers] == [202, 202, 202]
    assert ready.status_code == 503
    assert ready.json()["reason"] == "store unreachable"
    assert "retrieve_database" in ready.json()["last_error"]
    assert journal.backlog() == 3

    world.fake.bring_up()
    clock.advance(600)  # past the drainer's back-off
    drainer.drain_once()

    for i in range(3):
        assert len(store.rows_for_email(f"lead{i}@example.com")) == 5
    assert journal.backlog() == 0
    assert client.get("/readyz").status_code == 200


def test_the_first_failed_lookup_backs_off_instead_of_hammering_notion(
    clock: FakeClock, tmp_path: Path, catalog: Catalog
) -> None:
    world = make_notion_world(clock)
    world.fake.take_down()
    store = lazy_store(world)
    journal = Journal(tmp_path / "intake.sqlite3")
    drainer = Drainer(
        journal,
        IntakeProcessor(store, catalog, clock),
        clock,
        connect=store.connect,
        backoff=Backoff(base=10, cap=10),
    )
    signups(journal, 1)

    drainer.drain_once()
    tries = len(world.fake.requests)
    clock.advance(4)  # inside the back-off: no request
    drainer.drain_once()

    assert tries <= 2 and len(world.fake.requests) == tries


@pytest.mark.parametrize("problem", ["database not shared", "token refused"])
def test_a_wrong_setting_found_late_keeps_the_events_and_says_why(
    problem: str, clock: FakeClock, tmp_path: Path, catalog: Catalog
) -> None:
    world = make_notion_world(clock)
    if problem == "database not shared":
        store = lazy_store(world, email_queue_db_id="0" * 32)
    else:
        store = lazy_store(world)
        world.fake.token = "secret_rotated"
    journal = Journal(tmp_path / "intake.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock, connect=store.connect)
    signups(journal, 2)

    with capture_logs() as logs:
        drainer.drain_once()
        clock.advance(3600)
        drainer.drain_once()
    ready = client_for(tmp_path, journal, drainer, clock).get("/readyz")

    assert journal.backlog() == 2  # nothing rejected, nothing lost
    assert ready.status_code == 503
    assert ready.json()["reason"] == "store configuration error"
    expected = "NOTION_EMAIL_QUEUE_DB_ID" if problem == "database not shared" else "NOTION_TOKEN"
    assert expected in ready.json()["last_error"]
    unusable = [e for e in logs if e["event"] == "store_unusable"]
    assert unusable and unusable[0]["log_level"] == "error"
    assert "pending" in unusable[0]["action"]


def test_a_database_unshared_after_start_keeps_the_event_pending(
    clock: FakeClock, tmp_path: Path, catalog: Catalog
) -> None:
    world = make_notion_world(clock)
    store = lazy_store(world)
    journal = Journal(tmp_path / "intake.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock, connect=store.connect)
    drainer.drain_once()  # reached: the data sources are known
    world.fake.fail_next("query", status=404, code="object_not_found")
    signups(journal, 1)

    drainer.drain_once()

    assert journal.backlog() == 1
    assert drainer.store_problem == "store configuration error"


def worker_for(
    make_worker: WorkerFactory, store: Any, tmp_path: Path, clock: FakeClock
) -> tuple[Worker, list[float]]:
    from notion_queue.mail.outbox import OutboxMailer

    worker = make_worker(store, OutboxMailer(tmp_path / "outbox", clock))
    worker.lease.holder = "the worker on test"
    worker.status.path = tmp_path / "worker-status.json"
    waits: list[float] = []

    def pause(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    worker.lease.pause = pause
    return worker, waits


def test_the_worker_waits_for_notion_at_start_and_says_so(
    clock: FakeClock, tmp_path: Path, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    world.fake.take_down()
    worker, waits = worker_for(make_worker, lazy_store(world), tmp_path, clock)
    statuses: list[dict[str, Any]] = []

    def pause(seconds: float) -> None:
        waits.append(seconds)
        statuses.append(json.loads(worker.status.path.read_text()))  # type: ignore[union-attr]
        clock.advance(seconds)
        if len(waits) == 8:
            world.fake.bring_up()

    worker.lease.pause = pause
    with capture_logs() as logs:
        holder = worker.lease.hold()

    assert holder is None  # the lease is ours
    assert len(waits) == 8 and max(waits) <= 60 * 1.5  # capped back-off
    assert waits[1] > waits[0] * 0.5
    assert statuses[0]["waiting_for_store"] is True and statuses[0]["sending_paused"] is False
    assert "Notion" in statuses[0]["reason"]
    assert [e["event"] for e in logs].count("store_unreachable") == 8
    app_status = client_for(
        tmp_path, Journal(tmp_path / "j.sqlite3"), None, clock
    )  # the server reads the worker's status file from STATE_DIR
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "state" / "worker-status.json").write_text(json.dumps(statuses[0]))
    ready = app_status.get("/readyz")
    assert ready.status_code == 503 and "worker waiting for the store" in ready.json()["reasons"]


def test_a_stopped_worker_stops_waiting(
    clock: FakeClock, tmp_path: Path, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    world.fake.take_down()
    worker, _ = worker_for(make_worker, lazy_store(world), tmp_path, clock)
    worker.lease.pause = lambda seconds: worker.stop()  # SIGTERM while it waits

    assert worker.lease.hold() is None
    assert worker.stop_event.is_set()


def test_the_worker_does_not_wait_for_a_token_notion_refuses(
    clock: FakeClock, tmp_path: Path, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    world.fake.token = "secret_rotated"
    worker, waits = worker_for(make_worker, lazy_store(world), tmp_path, clock)

    with pytest.raises(AccountError, match="NOTION_TOKEN"):
        worker.lease.hold()
    assert waits == []


def test_a_workers_database_not_found_stops_the_worker_naming_its_setting(
    clock: FakeClock, tmp_path: Path, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    store = lazy_store(world, workers_db_id="0" * 32)
    worker, waits = worker_for(make_worker, store, tmp_path, clock)

    with pytest.raises(ConfigError, match=r"NOTION_WORKERS_DB_ID: database 0+ not found"):
        worker.lease.hold()
    assert waits == []


def test_a_renewal_during_an_outage_waits_instead_of_ending_the_worker(
    clock: FakeClock, tmp_path: Path, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    worker, waits = worker_for(make_worker, lazy_store(world), tmp_path, clock)
    assert worker.lease.hold() is None
    clock.advance(600)  # the lease is due for renewal
    world.fake.take_down()

    def pause(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)
        world.fake.bring_up()
        worker.stop_event.wait = lambda timeout=None: worker.stop() or True  # type: ignore[method-assign]

    worker.lease.pause = pause
    worker.run_forever()  # returns: no exception escaped

    assert len(waits) == 1


# §2 /readyz and the webhook answers tell the truth


class FullJournal(Journal):
    """A journal on a full disk."""

    def append(
        self, kind: str, event_key: str, payload: dict[str, Any], received_at: datetime
    ) -> tuple[str, bool]:
        with self._noting(write=True):
            raise sqlite3.OperationalError("database or disk is full")


def test_a_webhook_the_journal_cannot_take_is_answered_503_with_retry_after(
    tmp_path: Path, clock: FakeClock
) -> None:
    journal = FullJournal(tmp_path / "intake.sqlite3")
    client = client_for(tmp_path, journal, None, clock)

    with capture_logs() as logs:
        response = client.post("/webhook/christmas-signup", json=SIGNUP)
    ready = client.get("/readyz")

    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert "again" in response.json()["error"]
    assert any(e["event"] == "event_not_journaled" for e in logs)
    assert ready.status_code == 503 and ready.json()["reason"] == "journal cannot be written"
    assert "disk is full" in ready.json()["journal_error"]


def test_a_truly_full_journal_answers_503_never_500(tmp_path: Path, clock: FakeClock) -> None:
    journal = Journal(tmp_path / "intake.sqlite3")
    with journal._lock:
        pages = journal._db.execute("PRAGMA page_count").fetchone()[0]
        journal._db.execute(f"PRAGMA max_page_count = {pages + 2}")
    client = client_for(tmp_path, journal, None, clock)

    codes = []
    for i in range(200):
        body = {"email": f"lead{i}@example.com", "first_name": "A" * 90, "business_name": "B" * 90}
        codes.append(client.post("/webhook/christmas-signup", json=body).status_code)
        if codes[-1] != 202:
            break

    assert codes[0] == 202 and codes[-1] == 503 and set(codes) == {202, 503}
    assert client.get("/readyz").json()["reason"] == "journal cannot be written"
    with journal._lock:
        journal._db.execute("PRAGMA max_page_count = 1000000")
    assert client.post("/webhook/christmas-signup", json=SIGNUP).status_code == 202
    assert client.get("/readyz").status_code == 200  # the next write that works clears it


def test_starting_on_a_corrupt_journal_stops_with_one_line_naming_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "intake.sqlite3"
    filled_journal(path)
    overwrite_pages(path, 2, 6)

    with pytest.raises(CorruptFile) as caught:
        Journal(path)

    message = str(caught.value)
    assert str(path) in message and "corrupt" in message
    assert "move it aside" in message and ".recover" in message and "\n" not in message


def test_starting_on_a_file_that_is_not_a_database_stops_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite3"
    path.write_bytes(b"\x00garbage" * 1000)

    with pytest.raises(CorruptFile, match=r"queue\.sqlite3 is corrupt"):
        SqliteStore(path)


def test_starting_on_a_corrupt_queue_file_stops_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite3"
    store = SqliteStore(path)
    for i in range(300):
        store.add_row(new_row(email=f"l{i}@example.com", dedupe_key=f"d{i}"))
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    overwrite_pages(path, 2, 8)

    with pytest.raises(CorruptFile) as caught:
        SqliteStore(path)
    assert "unsent rows" in str(caught.value) and str(path) in str(caught.value)


def test_a_journal_corrupted_under_a_running_server_answers_503_and_readyz_says_so(
    tmp_path: Path, clock: FakeClock, catalog: Catalog
) -> None:
    path = tmp_path / "intake.sqlite3"
    filled_journal(path)
    journal = Journal(path)  # sound at start
    store = SqliteStore(tmp_path / "queue.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock)
    client = client_for(tmp_path, journal, drainer, clock)
    overwrite_pages(path, 2, 6)
    with journal._lock:  # what a long-running process does to its page cache sooner or later
        journal._db.execute("PRAGMA shrink_memory")

    answer = client.post("/webhook/christmas-signup", json=SIGNUP)
    with pytest.raises(sqlite3.DatabaseError):
        drainer.drain_once()
    ready = client.get("/readyz")

    assert answer.status_code == 503 and int(answer.headers["retry-after"]) > 0
    assert ready.status_code == 503 and ready.json()["reason"] == "journal corrupt"
    assert "malformed" in ready.json()["journal_error"]


def test_a_queue_file_corrupted_under_a_running_server_keeps_events_and_readyz_says_so(
    tmp_path: Path, clock: FakeClock, catalog: Catalog
) -> None:
    path = tmp_path / "queue.sqlite3"
    store = SqliteStore(path)
    for i in range(300):
        store.add_row(new_row(email=f"l{i}@example.com", dedupe_key=f"d{i}"))
    with store._lock:
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    journal = Journal(tmp_path / "intake.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock)
    signups(journal, 2)
    overwrite_pages(path, 2, 12)
    with store._lock:
        store._db.execute("PRAGMA shrink_memory")

    with capture_logs() as logs:
        drainer.drain_once()
    ready = client_for(tmp_path, journal, drainer, clock).get("/readyz")

    assert journal.backlog() == 2  # kept, not rejected, not retried as a bug
    assert ready.status_code == 503 and ready.json()["reason"] == "queue file corrupt"
    assert "malformed" in ready.json()["last_error"]
    assert any(e["event"] == "store_unusable" for e in logs)


def test_a_drainer_that_makes_no_progress_for_a_minute_makes_readyz_503(
    tmp_path: Path, clock: FakeClock, catalog: Catalog
) -> None:
    journal = Journal(tmp_path / "intake.sqlite3")
    store = SqliteStore(tmp_path / "queue.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock)  # not draining
    client = client_for(tmp_path, journal, drainer, clock)
    client.post("/webhook/christmas-signup", json=SIGNUP)

    clock.advance(STALL_SECONDS - 1)
    early = client.get("/readyz")
    clock.advance(2)
    stalled = client.get("/readyz")
    drainer.drain_once()
    drained = client.get("/readyz")

    assert early.status_code == 200
    assert stalled.status_code == 503 and stalled.json()["reason"].startswith("no progress")
    assert "1 events waiting" in stalled.json()["reason"]
    assert drained.status_code == 200


def test_an_idle_server_is_ready_however_long_it_idled(
    tmp_path: Path, clock: FakeClock, catalog: Catalog
) -> None:
    journal = Journal(tmp_path / "intake.sqlite3")
    store = SqliteStore(tmp_path / "queue.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock)
    client = client_for(tmp_path, journal, drainer, clock)

    clock.advance(3600)
    drainer.drain_once()  # the tick of an idle drainer
    client.post("/webhook/christmas-signup", json=SIGNUP)

    assert client.get("/readyz").status_code == 200


class RecordingJournal(Journal):
    def __init__(self, path: Path, *, fail: bool = False) -> None:
        super().__init__(path)
        self.fail = fail
        self.threads: list[str] = []

    def append(
        self, kind: str, event_key: str, payload: dict[str, Any], received_at: datetime
    ) -> tuple[str, bool]:
        self.threads.append(threading.current_thread().name)
        if self.fail:
            with self._noting(write=True):
                raise sqlite3.OperationalError("disk I/O error")
        return super().append(kind, event_key, payload, received_at)


@pytest.mark.parametrize("fail", [False, True])
def test_unsubscribe_journals_off_the_event_loop_and_answers_503_when_it_cannot(
    fail: bool, tmp_path: Path, clock: FakeClock, tokens: UnsubscribeTokens
) -> None:
    journal = RecordingJournal(tmp_path / "intake.sqlite3", fail=fail)
    client = client_for(tmp_path, journal, None, clock, unsubscribe=tokens)
    token = tokens.url("https://x.example", "sarah@example.com").split("token=")[1]

    response = client.post(f"/unsubscribe?token={token}", data={"List-Unsubscribe": "One-Click"})

    assert journal.threads and all("AnyIO worker" in name for name in journal.threads)
    if fail:
        assert response.status_code == 503 and int(response.headers["retry-after"]) > 0
        assert "try again" in response.text.lower() or "again" in response.text
    else:
        assert response.status_code == 200 and journal.backlog() == 1


def test_a_token_refused_after_start_pauses_sending_instead_of_ending_the_worker(
    clock: FakeClock, tmp_path: Path, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    worker, waits = worker_for(make_worker, lazy_store(world), tmp_path, clock)
    assert worker.lease.hold() is None
    clock.advance(600)  # the lease is due for renewal
    world.fake.token = "secret_rotated"
    statuses: list[dict[str, Any]] = []

    def pause(seconds: float) -> None:
        waits.append(seconds)
        statuses.append(json.loads(worker.status.path.read_text()))  # type: ignore[union-attr]
        clock.advance(seconds)
        world.fake.token = NOTION_TOKEN  # the token is fixed

    worker.lease.pause = pause
    assert worker.lease.hold() is None

    assert len(waits) == 1 and waits[0] >= 60
    assert statuses[0]["sending_paused"] is True and "NOTION_TOKEN" in statuses[0]["reason"]


def test_a_journal_that_cannot_be_opened_stops_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "intake.sqlite3"
    path.mkdir()  # e.g. a wrong STATE_DIR: not a file SQLite can open

    with pytest.raises(ConfigError) as caught:
        Journal(path)

    assert str(path) in str(caught.value) and "STATE_DIR" in str(caught.value)


def test_a_database_id_notion_calls_invalid_keeps_the_events_and_says_why(
    clock: FakeClock, tmp_path: Path, catalog: Catalog
) -> None:
    world = make_notion_world(clock)
    store = lazy_store(world)
    world.fake.fail_next("retrieve_database", status=400, code="validation_error")
    journal = Journal(tmp_path / "intake.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock, connect=store.connect)
    signups(journal, 1)

    with capture_logs() as logs:
        drainer.drain_once()

    assert journal.backlog() == 1
    assert drainer.store_problem == "store configuration error"
    assert "NOTION_EMAIL_QUEUE_DB_ID" in drainer.last_error
    assert not any(e["event"] == "drainer_error" for e in logs)

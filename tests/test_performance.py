"""Issue 15: work that must not grow with the queue or be repeated per email (no timings here:
the figures come from `make bench`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from notion_queue import render as render_module
from notion_queue.clock import FakeClock
from notion_queue.errors import RetryableError
from notion_queue.intake.drainer import Drainer
from notion_queue.intake.journal import Journal
from notion_queue.intake.processor import IntakeProcessor
from notion_queue.models import QueueRow, Template
from notion_queue.render import render
from notion_queue.sequences import Catalog
from notion_queue.store.sqlite import SqliteStore
from tests.conftest import T0, WorkerFactory, new_row


def _counting_compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    compiled: list[str] = []
    for env in (render_module._html_env, render_module._text_env):
        original = env.from_string

        def counting(source: str, *args: object, _original=original, **kwargs: object):  # type: ignore[no-untyped-def]
            compiled.append(source)
            return _original(source, *args, **kwargs)

        monkeypatch.setattr(env, "from_string", counting)
    return compiled


def test_a_template_is_compiled_once_until_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    render_module.clear_compiled()
    compiled = _counting_compiles(monkeypatch)
    template = Template("t1", "Hi {{ first_name }}", "<p>Hello {{ first_name }}</p>", "Hello")
    for name in ("Ann", "Bob", "Cy"):
        assert render(template, {"first_name": name}).subject == f"Hi {name}"
    assert len(compiled) == 3  # subject, HTML and text, once each for three emails

    edited = Template("t1", "Hello {{ first_name }}", template.html, template.text)
    assert render(edited, {"first_name": "Di"}).subject == "Hello Di"
    assert render(edited, {"first_name": "Ed"}).subject == "Hello Ed"
    assert len(compiled) == 4  # only the edited subject is compiled again


def test_a_template_syntax_error_is_reported_every_time() -> None:
    render_module.clear_compiled()
    broken = Template("t2", "Hi {{ first_name", "<p>x</p>")
    for _ in range(2):
        with pytest.raises(render_module.RenderError, match="syntax error"):
            render(broken, {"first_name": "Ann"})


class _DownMailer:
    """A mailer that is down: every row stays queued, to be retried after a back-off."""

    def send(self, email: object) -> object:
        raise RetryableError("mailer down")


class _CountingStore(SqliteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.read: list[str] = []

    def due_rows(self, until: datetime, **kwargs: Any) -> Iterator[QueueRow]:
        for row in super().due_rows(until, **kwargs):
            self.read.append(row.id)
            yield row


def test_keyset_paging_never_rereads_a_handled_row(
    tmp_path: Path, clock: FakeClock, make_worker: WorkerFactory
) -> None:
    store = _CountingStore(tmp_path / "queue.sqlite3")
    rows = [
        store.add_row(
            new_row(email=f"lead{i}@example.com", scheduled_time=T0 - timedelta(seconds=i % 3))
        )
        for i in range(60)
    ]
    worker = make_worker(store, _DownMailer(), batch_size=7, max_attempts=99)

    summary = worker.run_once()

    assert summary["retry"] == len(rows)  # every row was tried once and is still queued
    assert sorted(set(store.read)) == sorted(row.id for row in rows)
    # Each row is read once; a batch's query may read one row more (the one that says more are due).
    batches = -(-len(rows) // 7)
    assert len(store.read) <= len(rows) + batches
    store.close()


def test_concurrent_webhooks_share_one_journal_commit(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "intake.sqlite3")
    statements: list[str] = []
    journal._db.set_trace_callback(statements.append)
    results: list[tuple[str, bool]] = []
    arrivals = 10

    def post(i: int) -> None:
        results.append(journal.append("christmas-signup", f"k{i % 8}", {"i": i}, T0))

    with journal._lock:  # a commit (its fsync) is under way: the webhooks meanwhile queue up
        threads = [threading.Thread(target=post, args=(i,)) for i in range(arrivals)]
        for thread in threads:
            thread.start()
        for _ in range(10_000):  # until every one is queued behind the commit (a guard)
            if len(journal._queued) == arrivals:
                break
            threading.Event().wait(0.001)
    for thread in threads:
        thread.join()

    assert sum(1 for s in statements if s.strip().upper() == "COMMIT") == 1
    assert sorted(new for _, new in results) == [False] * 2 + [True] * 8  # k0, k1 came twice
    assert len({event_id for event_id, _ in results}) == 8
    journal.close()
    reopened = Journal(tmp_path / "intake.sqlite3")  # on disk, once each
    assert reopened.backlog() == 8
    reopened.close()


def test_a_drained_batch_is_marked_done_in_one_commit(
    tmp_path: Path, intake: tuple[Journal, Drainer]
) -> None:
    journal, drainer = intake
    drainer.drain_once()  # the hourly pruning of old history runs here, not in the batch below
    for i in range(5):
        journal.append("christmas-signup", f"k{i}", {"email": f"lead{i}@example.com"}, T0)
    statements: list[str] = []
    journal._db.set_trace_callback(statements.append)

    assert drainer.drain_once() == 5

    assert sum(1 for s in statements if s.strip().upper() == "COMMIT") == 1
    assert journal.backlog() == 0


def test_a_signup_writes_its_rows_in_one_queue_commit(
    tmp_path: Path, clock: FakeClock, catalog: Catalog
) -> None:
    store = SqliteStore(tmp_path / "queue.sqlite3")
    journal = Journal(tmp_path / "intake.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock)
    journal.append("christmas-signup", "k1", {"email": "sarah@example.com"}, T0)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)

    assert drainer.drain_once() == 1

    assert len(list(store.all_rows())) == 5
    # the contact and the five lead_nurture rows in the drained batch's one commit (was one
    # per row: six; then one for the contact and one for the rows: two)
    assert sum(1 for s in statements if s.strip().upper() == "COMMIT") == 1
    journal.close()
    store.close()

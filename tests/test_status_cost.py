"""`notion-queue status` on Notion costs requests in proportion to the unfinished rows, not to
the whole history (issue 15)."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from notion_queue.cli import cmd_status
from notion_queue.clock import FakeClock
from notion_queue.models import Status
from notion_queue.store.sqlite import SqliteStore
from tests.conftest import T0, make_notion_world, new_row

HISTORY = 100_000


def _status(store: object, clock: FakeClock) -> list[str]:
    lines: list[str] = []
    cmd_status(store, clock, lines.append, argparse.Namespace())  # type: ignore[arg-type]
    return lines


def test_status_on_notion_reads_the_unfinished_rows_only(clock: FakeClock) -> None:
    world = make_notion_world(clock)
    sent = world.store.add_row(
        new_row(email="done@example.com", status=Status.SENT, sent_at=T0 - timedelta(days=30))
    )
    world.fake.copy_page(sent.id, HISTORY - 1)
    for i in range(3):
        world.store.add_row(new_row(email=f"lead{i}@example.com", dedupe_key=f"q{i}"))
    world.store.add_row(
        new_row(email="bad@example.com", status=Status.FAILED, error_message="no template")
    )
    world.fake.requests.clear()

    out = _status(world.store, clock)

    assert world.fake.count("query") == 1  # 4 unfinished rows: one page, whatever the history
    assert out[0].startswith("4 unfinished rows: 3 queued, 1 failed")
    assert any("not counted" in line and "Sent" in line for line in out)
    assert any("Next due: lead_nurture_email_1" in line for line in out)
    assert any("bad@example.com: no template" in line for line in out)


def test_status_on_sqlite_still_counts_every_row(tmp_path: Path, clock: FakeClock) -> None:
    store = SqliteStore(tmp_path / "queue.sqlite3")
    store.add_row(new_row(email="done@example.com", status=Status.SENT, sent_at=T0))
    store.add_row(new_row(email="lead@example.com"))

    out = _status(store, clock)

    assert out[0] == "2 rows: 1 queued, 1 sent"
    store.close()


def test_status_on_notion_with_nothing_unfinished_says_the_queue_is_empty(
    clock: FakeClock,
) -> None:
    world = make_notion_world(clock)
    world.store.add_row(new_row(email="done@example.com", status=Status.SENT, sent_at=T0))

    out = _status(world.store, clock)

    assert out[0] == "The queue is empty."
    assert "not counted" in out[1]

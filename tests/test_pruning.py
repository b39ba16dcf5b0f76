"""History does not grow without end: finished journal entries, the outbox's legacy key records
and the Notion contacts cache are bounded (issue 15)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from notion_queue.clock import FakeClock
from notion_queue.intake.drainer import Drainer
from notion_queue.intake.journal import EventState, Journal
from notion_queue.mail.base import OutgoingEmail
from notion_queue.mail.outbox import LEGACY_KEYS, OutboxMailer
from notion_queue.models import ContactData
from notion_queue.retention import KEEP_HISTORY
from tests.conftest import NotionWorld

SIGNUP = {"email": "sarah@example.com", "first_name": "Sarah"}


def test_finished_journal_entries_are_pruned_after_48_hours(
    intake: tuple[Journal, Drainer], clock: FakeClock
) -> None:
    journal, drainer = intake
    old, _ = journal.append("christmas-signup", "old", SIGNUP, clock.now())
    drainer.drain_once()
    clock.advance(hours=47)
    recent, _ = journal.append(
        "christmas-signup", "recent", {**SIGNUP, "email": "b@x.com"}, clock.now()
    )
    drainer.drain_once()
    assert journal.status_of(old) is EventState.DONE

    clock.advance(hours=2)  # the first is 49 h old, the second 2 h
    assert drainer.drain_once() == 0

    assert journal.status_of(old) is None
    assert journal.status_of(recent) is EventState.DONE


def test_a_pending_event_is_never_pruned(intake: tuple[Journal, Drainer], clock: FakeClock) -> None:
    journal, _ = intake
    pending, _ = journal.append("christmas-signup", "k", SIGNUP, clock.now())

    assert journal.prune(clock.now() + KEEP_HISTORY + timedelta(days=30)) == 0
    assert journal.status_of(pending) is EventState.PENDING


def _message(key: str) -> OutgoingEmail:
    return OutgoingEmail(
        sender="BusinessX <hello@businessx.com>",
        to="sarah@example.com",
        subject="Hello",
        html="<p>Hi</p>",
        text="Hi",
        idempotency_key=key,
    )


def test_legacy_outbox_key_records_are_pruned_after_48_hours(
    tmp_path: Path, clock: FakeClock
) -> None:
    folder = tmp_path / "outbox"
    legacy = folder / LEGACY_KEYS
    legacy.mkdir(parents=True)
    old, recent = legacy / "a", legacy / "b"
    for path, age in ((old, timedelta(hours=49)), (recent, timedelta(hours=47))):
        path.write_text('{"id": "x@example.com"}')
        stamp = (clock.now() - age).timestamp()
        os.utime(path, (stamp, stamp))

    OutboxMailer(folder, clock).send(_message("k1"))

    assert not old.exists()
    assert recent.exists()


def test_the_notion_contacts_cache_is_bounded(notion_world: NotionWorld) -> None:
    notion = notion_world.store
    notion.contacts_cache_limit = 3
    for i in range(5):
        notion.upsert_contact(ContactData(email=f"lead{i}@example.com", first_name="A"))

    assert len(notion._contacts) == 3
    requests = len(notion_world.fake.requests)
    assert notion.find_contact("lead4@example.com") is not None  # the newest, from the cache
    assert len(notion_world.fake.requests) == requests
    assert notion.find_contact("lead0@example.com") is not None  # evicted: one query
    assert len(notion_world.fake.requests) == requests + 1

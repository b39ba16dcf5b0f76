"""The Templates rows' counts stay right when the worker recounts only after an edit: whatever
changed since the last recount (a Delivery from Resend, a new send, an Unsubscribed box ticked
by hand) is counted at the next one, and an untouched queue is not read again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from notion_queue.clock import FakeClock
from notion_queue.models import ContactData, Status, Template
from notion_queue.store import notion_schema as s
from notion_queue.template_counts import TemplateCounts
from tests.conftest import T0, NotionWorld, new_row

WELCOME = "lead_nurture_email_1"


def shown(world: NotionWorld) -> dict[str, int]:
    [page] = [
        p
        for p in world.fake.pages(world.data_source_ids["Templates"])
        if s.read_text(p["properties"]["Template ID"]) == WELCOME
    ]
    return {
        key: int(s.read_number(page["properties"][name]) or 0)
        for key, name in s.COUNT_PROPERTIES.items()
    }


@pytest.fixture
def counted(notion_world: NotionWorld, clock: FakeClock) -> tuple[TemplateCounts, str]:
    """Two sent emails, counted once (10 minutes after the worker started); the sent row of
    sam@example.com."""
    store = notion_world.store
    store.upsert_template(Template(WELCOME, "Hi {{ first_name }}", "<p>{{ first_name }}</p>"))
    rows = [
        store.add_row(new_row(email=email, status=Status.SENT, sent_at=T0 - timedelta(hours=1)))
        for email in ("sam@example.com", "kim@example.com")
    ]
    store.upsert_contact(ContactData(email="kim@example.com", first_name="Kim"))
    counts = TemplateCounts(rows=store, desk=store.template_desk, clock=clock)
    counts.run_once()
    clock.advance(minutes=10, seconds=30)  # the recount begins half a minute into a minute
    assert counts.run_once() == 1
    assert shown(notion_world)["sent"] == 2 and shown(notion_world)["delivered"] == 0
    return counts, rows[0].id


Edit = Callable[[NotionWorld, FakeClock, str], None]


def delivery_arrives(world: NotionWorld, clock: FakeClock, row_id: str) -> None:
    world.fake.edit_page(row_id, {s.DELIVERY: {"select": {"name": "delivered"}}})


def another_email_is_sent(world: NotionWorld, clock: FakeClock, row_id: str) -> None:
    world.store.add_row(new_row(email="lee@example.com", status=Status.SENT, sent_at=clock.now()))


def kim_is_unsubscribed_by_hand(world: NotionWorld, clock: FakeClock, row_id: str) -> None:
    [contact] = [
        p
        for p in world.fake.pages(world.data_source_ids["Contacts"])
        if p["properties"]["Email"]["email"] == "kim@example.com"
    ]
    world.fake.edit_page(contact["id"], {"Unsubscribed": {"checkbox": True}})


@pytest.mark.parametrize(
    ("edit", "count", "expected"),
    [
        (delivery_arrives, "delivered", 1),
        (another_email_is_sent, "sent", 3),
        (kim_is_unsubscribed_by_hand, "unsubscribed", 1),
    ],
    ids=["delivery", "new-send", "unsubscribed-by-hand"],
)
@pytest.mark.parametrize("edited_after", [0, 9.5], ids=["at-once", "just-before-recount"])
def test_an_edit_after_a_recount_is_counted_at_the_next(
    notion_world: NotionWorld,
    clock: FakeClock,
    counted: tuple[TemplateCounts, str],
    edit: Edit,
    count: str,
    expected: int,
    edited_after: float,
) -> None:
    counts, row_id = counted
    clock.advance(minutes=edited_after)
    edit(notion_world, clock, row_id)
    clock.advance(minutes=10 - edited_after)

    assert counts.run_once() == 1
    assert shown(notion_world)[count] == expected


def test_an_edit_in_the_recounts_own_minute_is_counted_at_the_next(
    notion_world: NotionWorld, clock: FakeClock, counted: tuple[TemplateCounts, str]
) -> None:
    counts, row_id = counted
    clock.advance(seconds=20)  # Notion stamps this edit with the recount's minute
    delivery_arrives(notion_world, clock, row_id)
    clock.advance(minutes=10)

    assert counts.run_once() == 1
    assert shown(notion_world)["delivered"] == 1


def test_a_recount_with_nothing_edited_since_reads_two_rows_and_writes_nothing(
    notion_world: NotionWorld, clock: FakeClock, counted: tuple[TemplateCounts, str]
) -> None:
    counts, _ = counted
    notion_world.fake.requests.clear()
    clock.advance(minutes=10)

    assert counts.run_once() == 0
    assert notion_world.fake.count() == 2 and notion_world.fake.count("query") == 2


def test_counts_taken_as_already_counted_are_recounted_only_after_an_edit(
    notion_world: NotionWorld, clock: FakeClock
) -> None:
    store = notion_world.store
    store.upsert_template(Template(WELCOME, "Hi {{ first_name }}", "<p>{{ first_name }}</p>"))
    row = store.add_row(new_row(status=Status.SENT, sent_at=T0 - timedelta(hours=1)))
    clock.advance(minutes=10)
    counts = TemplateCounts(rows=store, desk=store.template_desk, clock=clock)
    counts.already_counted(clock.now())
    notion_world.fake.requests.clear()

    clock.advance(minutes=10)
    assert counts.run_once() == 0 and notion_world.fake.count() == 2  # no history read
    delivery_arrives(notion_world, clock, row.id)
    clock.advance(minutes=10)
    assert counts.run_once() == 1
    assert shown(notion_world)["delivered"] == 1

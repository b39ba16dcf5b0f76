"""One contract, every QueueStore adapter: SQLite, Notion (through the fake Notion API) and
PostgreSQL (a real throw-away server)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from notion_queue.clock import FakeClock
from notion_queue.models import ContactData, RowUpdate, Status, Template
from notion_queue.store.base import QueueStore, RowNotFound
from notion_queue.store.notion import NotionStore
from notion_queue.store.postgres import PostgresStore
from notion_queue.store.sqlite import SqliteStore
from tests.conftest import T0, World, make_notion_world, new_row


@pytest.fixture(params=["sqlite", "notion", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_row_reads_back_as_it_was_written(store: QueueStore) -> None:
    written = new_row(
        variables={"business_name": "Sarah's Salon", "score": 52},
        expires_at=T0 + timedelta(days=1),
    )
    row = store.add_row(written)

    again = store.get_row(row.id)
    assert again == row
    assert row.email == "sarah@example.com" and row.first_name == "Sarah"
    assert row.sequence == "lead_nurture" and row.email_number == 1
    assert row.template_id == "lead_nurture_email_1"
    assert row.scheduled_time == T0 and row.expires_at == T0 + timedelta(days=1)
    assert row.status is Status.QUEUED and row.attempts == 0
    assert row.variables() == {"business_name": "Sarah's Salon", "score": 52}
    assert row.dedupe_key == written.dedupe_key


def test_long_variables_survive_notions_text_limit(store: QueueStore) -> None:
    long_value = "x" * 4500
    row = store.add_row(new_row(variables={"note": long_value}))
    assert store.get_row(row.id).variables() == {"note": long_value}


def test_due_rows_are_queued_rows_up_to_now_earliest_first(store: QueueStore) -> None:
    late = store.add_row(
        new_row(email="late@example.com", scheduled_time=T0 - timedelta(minutes=1))
    )
    early = store.add_row(
        new_row(email="early@example.com", scheduled_time=T0 - timedelta(hours=1))
    )
    exactly_now = store.add_row(new_row(email="now@example.com", scheduled_time=T0))
    store.add_row(new_row(email="future@example.com", scheduled_time=T0 + timedelta(seconds=1)))
    paused = store.add_row(new_row(email="paused@example.com"))
    store.update_row(paused.id, RowUpdate(status=Status.PAUSED))
    sent = store.add_row(new_row(email="sent@example.com"))
    store.update_row(sent.id, RowUpdate(status=Status.SENT, sent_at=T0))

    due = [row.id for row in store.due_rows(T0)]

    assert due == [early.id, late.id, exactly_now.id]


def test_due_rows_page_through_more_than_one_hundred(store: QueueStore) -> None:
    for i in range(130):
        store.add_row(
            new_row(email=f"lead{i}@example.com", scheduled_time=T0 - timedelta(seconds=i))
        )

    due = list(store.due_rows(T0))

    assert len(due) == 130
    times = [row.scheduled_time for row in due]
    assert times == sorted(times)  # type: ignore[type-var]


def test_update_changes_only_what_it_names(store: QueueStore) -> None:
    row = store.add_row(new_row())
    updated = store.update_row(
        row.id,
        RowUpdate(status=Status.SENT, sent_at=T0, resend_email_id="re_123", attempts=1),
    )
    assert updated.status is Status.SENT and updated.sent_at == T0
    assert updated.resend_email_id == "re_123" and updated.attempts == 1
    assert updated.first_name == "Sarah" and updated.scheduled_time == T0
    assert store.get_row(row.id) == updated


def test_unknown_row_is_not_found(store: QueueStore) -> None:
    with pytest.raises(RowNotFound):
        store.get_row("0f0f0f0f-0000-4000-8000-000000000000")


def test_rows_for_email_filter_by_sequence_and_status(store: QueueStore) -> None:
    nurture = store.add_row(new_row(dedupe_key="k1"))
    five_day = store.add_row(
        new_row(sequence="five_day", template_id="christmas_email_2", dedupe_key="k2")
    )
    done = store.add_row(new_row(dedupe_key="k3"))
    store.update_row(done.id, RowUpdate(status=Status.SENT))
    store.add_row(new_row(email="someone-else@example.com", dedupe_key="k4"))

    everything = store.rows_for_email("Sarah@Example.com")
    active_nurture = store.rows_for_email(
        "sarah@example.com", sequence="lead_nurture", statuses={Status.QUEUED, Status.PAUSED}
    )

    assert {r.id for r in everything} == {nurture.id, five_day.id, done.id}
    assert [r.id for r in active_nurture] == [nurture.id]


def test_contacts_are_created_then_updated_by_email(store: QueueStore) -> None:
    assert store.find_contact("sarah@example.com") is None
    created, first = store.upsert_contact(
        ContactData(email="Sarah@Example.com", first_name="Sarah", business_name="Sarah's Salon")
    )
    updated, second = store.upsert_contact(
        ContactData(
            email="sarah@example.com",
            segment="CRITICAL",
            assessment_score=52.0,
            assessment_data={"red_systems": 2},
            meeting_time=T0,
            last_event="assessment",
        )
    )

    assert updated.id == created.id
    assert updated.email == "sarah@example.com"
    assert updated.first_name == "Sarah" and updated.business_name == "Sarah's Salon"
    assert updated.segment == "CRITICAL" and updated.assessment_score == 52.0
    assert updated.assessment_data == {"red_systems": 2} and updated.meeting_time == T0
    assert store.find_contact("sarah@example.com") == updated
    again, third = store.upsert_contact(ContactData(email="sarah@example.com", segment="CRITICAL"))
    assert (first, second, third) == ("created", "updated", "unchanged") and again == updated


def test_templates_upsert_by_id(store: QueueStore) -> None:
    template = Template("lead_nurture_email_1", "Hi {{ first_name }}", "<p>Hello</p>", "Hello")
    assert store.all_templates().get("lead_nurture_email_1") is None
    assert store.upsert_template(template) == "created"
    assert store.upsert_template(template) == "unchanged"
    edited = Template("lead_nurture_email_1", "Hey {{ first_name }}", "<p>Hello</p>", "Hello")
    assert store.upsert_template(edited) == "updated"
    assert store.all_templates().get("lead_nurture_email_1") == edited


def test_all_templates_in_one_read_without_the_lease(store: QueueStore) -> None:
    first = Template("lead_nurture_email_1", "One", "<p>1</p>", "1")
    second = Template("lead_nurture_email_2", "Two", "<p>2</p>", "2", active=False)
    store.upsert_template(first)
    store.upsert_template(second)
    store.claim_lease("worker A", T0, 900.0)  # the lease is no template, on any store

    assert store.all_templates() == {first.template_id: first, second.template_id: second}


def test_one_worker_holds_the_queue_lease_until_it_lapses(store: QueueStore) -> None:
    ttl = 900.0
    assert store.claim_lease("worker A", T0, ttl) is None
    assert store.claim_lease("worker A", T0 + timedelta(minutes=5), ttl) is None  # renewal
    other = store.claim_lease("worker B", T0 + timedelta(minutes=10), ttl)
    assert other is not None and other.startswith("worker A")
    # A stopped renewing: after the lease runs out, B takes over and A is told so.
    assert store.claim_lease("worker B", T0 + timedelta(minutes=21), ttl) is None
    taken = store.claim_lease("worker A", T0 + timedelta(minutes=22), ttl)
    assert taken is not None and taken.startswith("worker B")
    store.release_lease("worker B")
    assert store.claim_lease("worker A", T0 + timedelta(minutes=23), ttl) is None


def test_due_rows_come_a_page_at_a_time_each_page_read_when_it_is_reached(
    store: QueueStore,
) -> None:
    rows = [
        store.add_row(new_row(email=f"lead{i}@example.com", scheduled_time=T0 - timedelta(hours=i)))
        for i in range(5, 0, -1)
    ]  # earliest first

    due = store.due_rows(T0, page_size=2)
    first = next(due)
    # Changed elsewhere meanwhile. The second row came with the first page, read already; the
    # third and fourth are on the second page, read only when it is reached.
    store.update_row(rows[1].id, RowUpdate(status=Status.SENT, sent_at=T0))
    store.update_row(rows[2].id, RowUpdate(attempts=3))
    store.update_row(rows[3].id, RowUpdate(status=Status.SENT, sent_at=T0))
    rest = list(due)

    assert [first.id] + [r.id for r in rest] == [rows[0].id, rows[1].id, rows[2].id, rows[4].id]
    assert rest[0].status is Status.QUEUED  # as the first page read it
    assert rest[1].attempts == 3  # as the second page read it


def test_due_rows_with_the_same_time_go_out_in_the_order_they_were_queued(
    store: QueueStore,
) -> None:
    queued = [store.add_row(new_row(email=f"tie{i}@example.com")) for i in range(5)]

    due = [row.id for row in store.due_rows(T0, page_size=2)]

    assert due == [row.id for row in queued]  # across page boundaries too


def test_all_rows_come_oldest_first(store: QueueStore) -> None:
    if isinstance(store, SqliteStore):
        # SQLite promises no order without ORDER BY: read unordered SELECTs reversed, as it may.
        store._db.execute("PRAGMA reverse_unordered_selects = ON")
    written = [
        store.add_row(
            new_row(email=f"lead{i}@example.com", scheduled_time=T0 - timedelta(minutes=i))
        )
        for i in range(4)
    ]
    store.update_row(written[0].id, RowUpdate(status=Status.SENT, sent_at=T0))

    assert [row.id for row in store.all_rows()] == [row.id for row in written]


def test_a_resend_email_id_finds_the_row_it_was_sent_as(store: QueueStore) -> None:
    sent = store.add_row(new_row(email="sent@example.com"))
    store.add_row(new_row(email="queued@example.com"))
    store.update_row(sent.id, RowUpdate(status=Status.SENT, sent_at=T0, resend_email_id="re_1"))

    found = store.find_by_message_id("re_1")

    assert found is not None and found.id == sent.id and found.resend_email_id == "re_1"
    assert store.find_by_message_id("re_unknown") is None


def test_unsubscribed_emails_are_the_ticked_addresses(store: QueueStore) -> None:
    assert store.unsubscribed_emails() == set()
    store.upsert_contact(ContactData(email="Gone@Example.com", unsubscribed=True))
    store.upsert_contact(ContactData(email="stays@example.com", unsubscribed=False))
    store.upsert_contact(ContactData(email="back@example.com", unsubscribed=True))
    store.upsert_contact(ContactData(email="back@example.com", unsubscribed=False))

    assert store.unsubscribed_emails() == {"gone@example.com"}


def test_release_by_a_worker_that_does_not_hold_the_lease_changes_nothing(
    store: QueueStore,
) -> None:
    assert store.claim_lease("worker A", T0, 900.0) is None
    store.release_lease("worker B")
    refused = store.claim_lease("worker B", T0 + timedelta(minutes=1), 900.0)
    assert refused is not None and refused.startswith("worker A")


@pytest.fixture
def outcomes_world(
    backend: str, clock: FakeClock, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[World]:
    """A store that records outcomes: SQLite and PostgreSQL always, Notion with an Email
    Analytics database."""
    if backend == "postgres":
        yield World(request.getfixturevalue("postgres_store"), None)
    elif backend == "sqlite":
        sqlite = SqliteStore(tmp_path / "queue.sqlite3")
        yield World(sqlite, None)
        sqlite.close()
    else:
        notion = make_notion_world(clock, with_analytics=True)
        yield World(notion.store, notion.fake)


def recorded_outcomes(world: World) -> list[tuple[Any, ...]]:
    """(email, template, sequence, outcome, at, message id, error, lateness) per recorded row."""
    if isinstance(world.store, PostgresStore):
        found = world.store._query(
            "SELECT email_address, template_id, sequence, outcome, at, resend_email_id,"
            " error_message, lateness_seconds FROM email_analytics ORDER BY seq"
        )
        return [tuple(r.values()) for r in found]
    if world.fake is None:
        assert isinstance(world.store, SqliteStore)
        with closing(sqlite3.connect(world.store.path)) as db:
            found = db.execute(
                "SELECT email_address, template_id, sequence, outcome, at, resend_email_id,"
                " error_message, lateness_seconds FROM email_analytics"
            ).fetchall()
        return [(*r[:4], datetime.fromisoformat(r[4]), *r[5:]) for r in found]
    assert isinstance(world.store, NotionStore) and world.store.analytics_ds is not None

    def text(prop: dict[str, Any]) -> str:
        return "".join(part["plain_text"] for part in prop["rich_text"])

    return [
        (
            p["Email Address"]["email"],
            text(p["Template ID"]),
            p["Sequence"]["select"]["name"],
            p["Outcome"]["select"]["name"],
            datetime.fromisoformat(p["At"]["date"]["start"].replace("Z", "+00:00")),
            text(p["Resend Email ID"]),
            text(p["Error Message"]),
            p["Lateness Seconds"]["number"],
        )
        for p in (page["properties"] for page in world.fake.pages(world.store.analytics_ds))
    ]


def test_each_outcome_is_recorded_as_one_row(outcomes_world: World) -> None:
    store = outcomes_world.store
    row = store.add_row(new_row())

    store.record_outcome(row, "sent", T0, message_id="re_1", lateness_seconds=1.5)
    store.record_outcome(row, "failed", T0 + timedelta(minutes=1), error="rejected")

    assert recorded_outcomes(outcomes_world) == [
        ("sarah@example.com", "lead_nurture_email_1", "lead_nurture", "sent", T0, "re_1", "", 1.5),
        (
            "sarah@example.com",
            "lead_nurture_email_1",
            "lead_nurture",
            "failed",
            T0 + timedelta(minutes=1),
            "",
            "rejected",
            None,
        ),
    ]


def test_notion_without_an_analytics_database_records_outcomes_nowhere(
    clock: FakeClock,
) -> None:
    world = make_notion_world(clock)
    row = world.store.add_row(new_row())
    world.fake.requests.clear()

    world.store.record_outcome(row, "sent", T0, message_id="re_1")

    assert world.fake.count() == 0


def test_a_template_page_body_is_kept_and_read_back(store: QueueStore) -> None:
    paragraph = {
        "object": "block",
        "type": "paragraph",
        "paragraph": {"rich_text": [{"type": "text", "text": {"content": "Hi {{ first_name }}"}}]},
    }
    document = Template(
        "welcome", "Welcome", "", "", blocks=json.dumps([paragraph], ensure_ascii=False)
    )
    assert store.upsert_template(document) == "created"
    assert store.upsert_template(document, force=True) in ("unchanged", "updated")

    assert "welcome" in store.all_templates()  # as TemplateSource asks: the list, then the body
    [read] = json.loads(store.page_body("welcome"))
    assert read["type"] == "paragraph"
    assert read["paragraph"]["rich_text"][0]["text"]["content"] == "Hi {{ first_name }}"
    assert store.page_body("no_such_template") == ""


def test_sent_rows_are_the_sent_rows_since_a_time_in_sent_order(store: QueueStore) -> None:
    def sent(email: str, at: datetime) -> str:
        row = store.add_row(new_row(email=email))
        store.update_row(row.id, RowUpdate(status=Status.SENT, sent_at=at, resend_email_id=email))
        return row.id

    later = sent("later@example.com", T0 - timedelta(hours=1))
    earlier = sent("earlier@example.com", T0 - timedelta(hours=2))
    old = sent("old@example.com", T0 - timedelta(days=3))
    store.add_row(new_row(email="queued@example.com"))
    failed = store.add_row(new_row(email="failed@example.com"))
    store.update_row(failed.id, RowUpdate(status=Status.FAILED, error_message="bounced"))

    assert [r.id for r in store.sent_rows(T0 - timedelta(days=1))] == [earlier, later]
    assert [r.id for r in store.sent_rows()] == [old, earlier, later]


def test_due_rows_after_a_row_resume_behind_it(store: QueueStore) -> None:
    rows = [
        store.add_row(new_row(email=f"lead{i}@example.com", scheduled_time=T0 - timedelta(hours=i)))
        for i in range(5, 0, -1)
    ]  # earliest first

    resumed = [row.id for row in store.due_rows(T0, page_size=2, after=rows[1])]

    assert resumed == [row.id for row in rows[2:]]


def test_due_rows_after_a_row_never_skip_a_row_tied_with_it(store: QueueStore) -> None:
    tied = [store.add_row(new_row(email=f"tie{i}@example.com")) for i in range(4)]
    store.update_row(tied[1].id, RowUpdate(status=Status.SENT, sent_at=T0))  # the worker sent it

    resumed = [row.id for row in store.due_rows(T0, page_size=2, after=tied[1])]

    # SQLite and PostgreSQL resume exactly behind it; Notion, which has no keyset on a page, may repeat the
    # tied rows before it (the caller skips those it handled), never skips one after it.
    assert resumed[-2:] == [tied[2].id, tied[3].id]
    assert set(resumed) <= {tied[0].id, tied[2].id, tied[3].id}


def test_add_rows_creates_an_events_rows_in_order(store: QueueStore) -> None:
    made = store.add_rows(
        [new_row(email="ann@example.com", email_number=n, template_id=f"t{n}") for n in (1, 2, 3)]
    )

    assert [row.template_id for row in made] == ["t1", "t2", "t3"]
    assert [row.id for row in store.rows_for_email("ann@example.com")] == [row.id for row in made]
    assert store.add_rows([]) == []


def test_rows_with_status_are_those_rows_oldest_first(store: QueueStore) -> None:
    queued = store.add_row(new_row(email="a@example.com"))
    store.add_row(new_row(email="b@example.com", status=Status.SENT, sent_at=T0))
    failed = store.add_row(new_row(email="c@example.com", status=Status.FAILED))

    found = store.rows_with_status([Status.QUEUED, Status.FAILED])

    assert [row.id for row in found] == [queued.id, failed.id]
    assert list(store.rows_with_status([Status.PAUSED])) == []


def test_status_counts_count_every_row_or_none_at_all(store: QueueStore) -> None:
    store.add_row(new_row(email="a@example.com"))
    store.add_row(new_row(email="b@example.com", status=Status.SENT, sent_at=T0))

    counts = store.status_counts()

    if isinstance(store, SqliteStore | PostgresStore):
        assert counts == {("lead_nurture", "queued"): 1, ("lead_nurture", "sent"): 1}
    else:
        assert counts is None  # Notion has no count: it would read every row

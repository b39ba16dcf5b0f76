"""The Notion path under Notion's own failure modes, through the fake and the real notion-client."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from notion_queue.clock import FakeClock
from notion_queue.intake.drainer import Drainer
from notion_queue.intake.journal import Journal
from notion_queue.intake.processor import IntakeProcessor
from notion_queue.mail.outbox import OutboxMailer
from notion_queue.models import Status
from notion_queue.sequences import Catalog
from tests.conftest import (
    NOTION_TOKEN,
    T0,
    NotionWorld,
    WorkerFactory,
    make_notion_world,
    needs_business_name,
    new_row,
)


def notion_intake(
    clock: FakeClock, tmp_path: Path, catalog: Catalog
) -> tuple[NotionWorld, Journal, Drainer]:
    """A Notion world with the intake journal and drainer in front of it."""
    world = make_notion_world(clock)
    journal = Journal(tmp_path / "j.sqlite3")
    return world, journal, Drainer(journal, IntakeProcessor(world.store, catalog, clock), clock)


def test_through_a_429_storm_every_due_row_is_sent_honouring_retry_after(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    rows = [world.store.add_row(new_row(email=f"lead{i}@example.com")) for i in range(12)]
    world.fake.requests.clear()
    # Notion's own limit, 3 requests/s with a small burst, and a storm of extra 429s on top.
    world.fake.rate_limit = 3
    from notion_queue.pacing import TokenBucket

    world.fake._bucket = TokenBucket(clock, 3, 3)
    world.fake.fail_next("update_page", status=429, code="rate_limited", times=5, retry_after=2)
    world.fake.fail_next("query", status=429, code="rate_limited", times=2, retry_after=3)
    start = clock.now()

    summary = make_worker(world.store, outbox).run_once()

    assert summary["sent"] == 12
    assert {world.store.get_row(r.id).status for r in rows} == {Status.SENT}
    assert len(list(outbox.folder.glob("*.eml"))) == 12
    assert world.fake.count(status=429) >= 7
    # Every Retry-After was waited out on the clock (no hot retries).
    assert 2.0 in clock.slept and 3.0 in clock.slept
    assert clock.now() - start >= timedelta(seconds=5 * 2 + 2 * 3)


def test_a_500_on_one_row_leaves_it_for_a_later_cycle_while_the_others_are_sent(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    unlucky = world.store.add_row(
        new_row(email="unlucky@example.com", scheduled_time=T0 - timedelta(minutes=5))
    )
    others = [world.store.add_row(new_row(email=f"lead{i}@example.com")) for i in range(3)]
    worker = make_worker(world.store, outbox)
    # The first row's "mark sent" keeps failing: more 500s than the gateway retries.
    world.fake.fail_next("update_page", status=500, times=6)

    first = worker.run_once()

    assert first["sent"] == 3 and first["retry"] == 1
    assert world.store.get_row(unlucky.id).status is Status.QUEUED
    assert {world.store.get_row(r.id).status for r in others} == {Status.SENT}

    second = worker.run_once()

    assert second["sent"] == 1
    done = world.store.get_row(unlucky.id)
    assert done.status is Status.SENT
    # The resend in the second cycle reused the idempotency key: one email, not two.
    assert len(list(outbox.folder.glob("*.eml"))) == 4


def test_a_create_that_timed_out_but_happened_leaves_one_row(
    clock: FakeClock, tmp_path: Path, catalog: Catalog
) -> None:
    world, journal, drainer = notion_intake(clock, tmp_path, catalog)
    journal.append(
        "christmas-signup", "k1", {"email": "sarah@example.com", "first_name": "Sarah"}, T0
    )
    world.fake.fail_next("create_page", timeout=True, commit=True)
    world.fake.fail_next("create_page", status=503, code="service_unavailable", commit=True)

    drainer.drain_once()  # first row created, answer lost: the event waits for a retry
    clock.advance(600)
    drainer.drain_once()
    clock.advance(600)
    drainer.drain_once()

    rows = world.store.rows_for_email("sarah@example.com")
    assert [r.email_number for r in rows] == [1, 2, 3, 4, 5]
    assert journal.backlog() == 0


def test_notion_down_during_intake_loses_nothing(
    clock: FakeClock, tmp_path: Path, catalog: Catalog
) -> None:
    world, journal, drainer = notion_intake(clock, tmp_path, catalog)
    world.fake.take_down()
    for i in range(5):
        journal.append(
            "christmas-signup", f"k{i}", {"email": f"lead{i}@example.com", "first_name": "A"}, T0
        )
    for _ in range(3):
        drainer.drain_once()
        clock.advance(60)
    assert journal.backlog() == 5 and drainer.store_ok is False

    world.fake.bring_up()
    clock.advance(3600)
    while journal.backlog():
        drainer.drain_once()
        clock.advance(60)

    for i in range(5):
        assert len(world.store.rows_for_email(f"lead{i}@example.com")) == 5
    assert drainer.store_ok is True


def test_a_revoked_token_fails_no_row(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    world.store.add_row(new_row())
    world.fake.token = "secret_rotated"

    summary = make_worker(world.store, outbox).run_once()

    assert summary.account_error is not None and "NOTION_TOKEN" in summary.account_error
    assert NOTION_TOKEN not in summary.account_error
    world.fake.token = NOTION_TOKEN
    assert (
        world.fake.pages(world.data_source_ids["Email Queue"])[0]["properties"]["Status"]["select"][
            "name"
        ]
        == "queued"
    )


def test_an_idle_poll_costs_one_request_whatever_the_history(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    for i in range(150):
        row = world.store.add_row(
            new_row(email=f"old{i}@example.com", scheduled_time=T0 - timedelta(days=3))
        )
        world.fake.edit_page(row.id, {"Status": {"select": {"name": "sent"}}})
    worker = make_worker(world.store, outbox)  # the Email Queue poll alone: no Templates jobs
    world.fake.requests.clear()  # (the whole idle cost, every job: test_idle_cost.py)

    summary = worker.run_once()

    assert summary.handled == 0
    assert world.fake.count() == 1 and world.fake.count("query") == 1


def test_email_analytics_gets_one_row_per_outcome_when_configured(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock, with_analytics=True)
    world.store.add_row(new_row(email="ok@example.com"))
    # Edits broke it (first_name alone has a fallback now): the worker fails it.
    world.store.add_row(replace(needs_business_name(world.store), email="broken@example.com"))
    world.fake.requests.clear()

    make_worker(world.store, outbox).run_once()

    pages = world.fake.pages(world.data_source_ids["Email Analytics"])
    outcomes = sorted(p["properties"]["Outcome"]["select"]["name"] for p in pages)
    assert outcomes == ["failed", "sent"]
    assert world.fake.count("create_page") == 2  # one request per email, as the README says


def test_without_analytics_no_extra_request_is_made(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    world.store.add_row(new_row())
    world.fake.requests.clear()

    make_worker(world.store, outbox).run_once()

    assert world.fake.count("create_page") == 0


def test_sending_a_backlog_costs_one_update_per_email_and_no_rereads(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    for i in range(40):
        world.store.add_row(new_row(email=f"lead{i}@example.com"))
    world.fake.requests.clear()

    summary = make_worker(world.store, outbox, batch_size=8).run_once()

    assert summary["sent"] == 40
    assert world.fake.count("update_page") == 40
    assert world.fake.count("retrieve_page") == 0
    # Five batches of eight, one query each (the last one's short page says nothing is left),
    # one read of the unsubscribed addresses for the cycle, and one of the Templates database.
    assert world.fake.count("query") == 5 + 1 + 1


def test_templates_are_read_in_one_request_whatever_the_rows_use(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    for number in range(1, 6):
        world.store.add_row(
            new_row(
                email=f"lead{number}@example.com",
                email_number=number,
                template_id=f"lead_nurture_email_{number}",
            )
        )
    world.fake.requests.clear()

    summary = make_worker(world.store, outbox).run_once()

    assert summary["sent"] == 5
    # One due query, one unsubscribed read, one read of all templates (not one per template).
    assert world.fake.count("query") == 3


def test_intake_of_a_new_lead_costs_the_floor_and_a_known_lead_no_lookup(
    clock: FakeClock, tmp_path: Path, catalog: Catalog
) -> None:
    world, journal, drainer = notion_intake(clock, tmp_path, catalog)
    journal.append("christmas-signup", "k1", {"email": "new@example.com", "first_name": "Ann"}, T0)
    world.fake.requests.clear()

    drainer.drain_once()

    # One contact lookup, one contact create, five row creates.
    assert world.fake.count() == 7
    assert world.fake.count("query") == 1 and world.fake.count("create_page") == 6

    journal.append(
        "christmas-assessment", "k2", {"email": "new@example.com", "first_name": "Ann"}, T0
    )
    world.fake.requests.clear()
    drainer.drain_once()

    # Known contact, unchanged name: no lookup, one write (Last Event), one read of the rows,
    # five lead_nurture cancels, five five_day creates.
    assert world.fake.count("query") == 1
    assert world.fake.count("create_page") == 5


def test_renewing_a_held_lease_costs_one_request_and_a_lapsed_one_is_claimed_again(
    clock: FakeClock,
) -> None:
    world = make_notion_world(clock)
    ttl = 900.0
    assert world.store.claim_lease("worker A", T0, ttl) is None
    world.fake.requests.clear()

    assert world.store.claim_lease("worker A", T0 + timedelta(minutes=5), ttl) is None
    assert world.fake.count() == 1 and world.fake.count("update_page") == 1

    # Stalled past its lease: B took the queue, and A's next renewal finds out.
    assert world.store.claim_lease("worker B", T0 + timedelta(minutes=21), ttl) is None
    other = world.store.claim_lease("worker A", T0 + timedelta(minutes=22), ttl)
    assert other is not None and other.startswith("worker B")


def test_the_lease_is_a_workers_row_a_marketer_reads_as_who_sends_the_queue_until_when(
    clock: FakeClock,
) -> None:
    world = make_notion_world(clock)
    holder = "the worker on web-1 (/var/lib/notion-queue)"  # entry.py: host and STATE_DIR

    def lease_row() -> dict[str, object]:
        (page,) = world.fake.pages(world.store.workers_ds)
        p = page["properties"]
        return {
            "Queue": p["Queue"]["title"][0]["plain_text"],
            "Holder": p["Holder"]["rich_text"][0]["plain_text"],
            "Lease Until": datetime.fromisoformat(p["Lease Until"]["date"]["start"]),
            "Renewed At": datetime.fromisoformat(p["Renewed At"]["date"]["start"]),
        }

    assert world.store.claim_lease(holder, T0, 900.0) is None
    assert lease_row() == {
        "Queue": "Email Queue",
        "Holder": holder,
        "Lease Until": T0 + timedelta(minutes=15),
        "Renewed At": T0,
    }
    assert world.store.claim_lease(holder, T0 + timedelta(minutes=5), 900.0) is None
    assert lease_row()["Lease Until"] == T0 + timedelta(minutes=20)
    assert lease_row()["Renewed At"] == T0 + timedelta(minutes=5)

    clock.set(T0 + timedelta(minutes=6))
    world.store.release_lease(holder)

    assert lease_row()["Lease Until"] == T0 + timedelta(minutes=6)  # lapsed: free to claim
    # The lease is no template: the Templates database holds only what marketers put there.
    assert world.fake.pages(world.store.templates_ds) == []
    assert world.store.all_templates() == {}


def test_rows_falling_due_seconds_apart_cost_one_query_each_and_one_update(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    for i in range(3):
        world.store.add_row(
            new_row(email=f"lead{i}@example.com", scheduled_time=T0 + timedelta(seconds=3 * i))
        )
    worker = make_worker(world.store, outbox, poll_interval=60)
    world.fake.requests.clear()

    wakes = []
    for _ in range(3):
        summary = worker.run_once()
        assert summary["sent"] == 1
        if summary.next_due is not None:
            wakes.append(summary.next_due)
            clock.set(summary.next_due)

    # Each cycle's query names the next row's time, so the worker wakes right then.
    assert wakes == [T0 + timedelta(seconds=3), T0 + timedelta(seconds=6)]
    assert world.fake.count("update_page") == 3
    # Three wake-up queries; the Unsubscribed boxes and the templates read once (fresh enough).
    assert world.fake.count("query") == 3 + 1 + 1


def test_a_lease_create_that_fails_unsure_is_settled_by_the_read_back(clock: FakeClock) -> None:
    """A worker's very first start creates the lease row in Workers; a 500 or a timeout on that
    create used to end the start-up (exit 2) instead of finding out whether it was saved."""
    world = make_notion_world(clock)
    world.fake.fail_next("create_page", status=500)  # not saved
    assert world.store.claim_lease("worker A", T0, 900.0) is None

    other = make_notion_world(clock)
    other.fake.fail_next("create_page", timeout=True, commit=True)  # saved, answer lost
    assert other.store.claim_lease("worker A", T0, 900.0) is None

    for w in (world, other):
        titles = [
            page["properties"]["Queue"]["title"][0]["plain_text"]
            for page in w.fake.pages(w.store.workers_ds)
        ]
        assert titles == ["Email Queue"]
        assert w.fake.pages(w.store.templates_ds) == []


def test_a_429_with_a_rate_limit_reason_notion_has_not_documented_is_waited_out(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    row = world.store.add_row(new_row())
    world.fake.fail_next(
        "update_page",
        status=429,
        code="rate_limited",
        retry_after=7,
        rate_limit_reason="public_api_some_new_limit",
    )

    summary = make_worker(world.store, outbox).run_once()

    assert summary["sent"] == 1 and summary.account_error is None
    assert world.store.get_row(row.id).status is Status.SENT
    assert 7.0 in clock.slept


def test_a_blocked_integration_pauses_sending_and_fails_no_row(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    row = world.store.add_row(new_row())
    world.fake.requests.clear()
    world.fake.fail_next(
        status=429, code="rate_limited", rate_limit_reason="public_api_request_blocked", times=5
    )

    summary = make_worker(world.store, outbox).run_once()

    assert summary.account_error is not None
    assert "public_api_request_blocked" in summary.account_error
    assert "Notion support" in summary.account_error
    assert world.fake.count() == 1  # not retried: Notion says a blocked request must not be
    assert list(outbox.folder.glob("*.eml")) == []
    world.fake._faults.clear()  # the block is lifted
    assert world.store.get_row(row.id).status is Status.QUEUED


def test_an_event_arriving_while_notion_blocks_the_integration_is_kept_not_rejected(
    clock: FakeClock, tmp_path: Path, catalog: Catalog
) -> None:
    world, journal, drainer = notion_intake(clock, tmp_path, catalog)
    world.fake.fail_next(
        status=429, code="rate_limited", rate_limit_reason="public_api_request_blocked", times=3
    )
    journal.append("christmas-signup", "k1", {"email": "lead@example.com", "first_name": "A"}, T0)

    drainer.drain_once()
    assert journal.backlog() == 1 and drainer.store_ok is False

    world.fake._faults.clear()  # the block is lifted
    clock.advance(3600)
    while journal.backlog():
        drainer.drain_once()
        clock.advance(60)
    assert len(world.store.rows_for_email("lead@example.com")) == 5


def test_a_429_without_notions_json_body_is_waited_out_too(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    row = world.store.add_row(new_row())
    world.fake.fail_next("update_page", status=429, code="rate_limited", html=True, retry_after=4)

    summary = make_worker(world.store, outbox).run_once()

    assert summary["sent"] == 1 and world.store.get_row(row.id).status is Status.SENT
    assert 4.0 in clock.slept

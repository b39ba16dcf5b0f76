"""`notion-queue report`: how each email performs, from the Delivery column Resend's webhooks
fill, per sequence, per template and step by step."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from notion_queue.clock import FakeClock
from notion_queue.intake.drainer import Drainer
from notion_queue.intake.journal import Journal
from notion_queue.intake.processor import IntakeProcessor
from notion_queue.mail.outbox import OutboxMailer
from notion_queue.models import ContactData, Delivery, RowUpdate, Status, Template
from notion_queue.report import build_report, report_html, run_report
from notion_queue.sequences import Catalog
from notion_queue.store import notion_schema as s
from notion_queue.store.base import QueueStore
from notion_queue.store.sqlite import SqliteStore
from notion_queue.template_counts import TemplateCounts
from notion_queue.unsubscribe import UnsubscribeTokens
from tests.conftest import T0, NotionWorld, WorkerFactory, World, new_row
from tests.test_cli import Cli, cli  # noqa: F401  (the fixture)
from tests.test_compliance import app_client, svix_headers


def scripted_run(
    store: QueueStore,
    intake: tuple[Journal, Drainer],
    clock: FakeClock,
    tokens: UnsubscribeTokens,
    outbox: OutboxMailer,
    make_worker: WorkerFactory,
) -> None:
    """Six sends of lead_nurture, then Resend's events through /webhook/resend:
    a opens and clicks email 1, gets email 2 delivered; b opens email 1, email 2 hard-bounces;
    c gets email 1 and unsubscribes; d's email 1 hard-bounces."""
    journal, drainer = intake
    client = app_client(journal, drainer, clock, tokens)
    rows = {}
    for person in "abcd":
        rows[person, 1] = store.add_row(new_row(email=f"{person}@example.com"))
    for person in "ab":
        rows[person, 2] = store.add_row(
            new_row(
                email=f"{person}@example.com",
                email_number=2,
                template_id="lead_nurture_email_2",
            )
        )
    assert make_worker(store, outbox).run_once()["sent"] == 6
    events = {
        ("a", 1): ["email.delivered", "email.opened", "email.clicked"],
        ("a", 2): ["email.delivered"],
        ("b", 1): ["email.delivered", "email.opened"],
        ("b", 2): ["email.bounced"],
        ("c", 1): ["email.delivered"],
        ("d", 1): ["email.bounced"],
    }
    for (person, number), kinds in events.items():
        message_id = store.get_row(rows[person, number].id).resend_email_id
        for kind in kinds:
            data: dict[str, object] = {"email_id": message_id, "to": [f"{person}@example.com"]}
            if kind == "email.bounced":
                data["bounce"] = {"type": "Permanent", "subType": "General", "message": "550"}
            body = json.dumps({"type": kind, "data": data}).encode()
            msg = f"msg_{person}{number}_{kind}"
            answer = client.post("/webhook/resend", content=body, headers=svix_headers(body, msg))
            assert answer.status_code == 202
    drainer.drain_once()
    store.upsert_contact(ContactData(email="c@example.com", unsubscribed=True))


def test_report_after_sends_and_resend_events_shows_the_right_numbers(
    store: QueueStore,
    world: World,
    intake: tuple[Journal, Drainer],
    clock: FakeClock,
    tokens: UnsubscribeTokens,
    outbox: OutboxMailer,
    make_worker: WorkerFactory,
) -> None:
    scripted_run(store, intake, clock, tokens, outbox, make_worker)
    if world.fake is not None:
        world.fake.requests.clear()

    report = build_report(store, None)  # type: ignore[arg-type]

    first = report.by_template["lead_nurture_email_1"]
    second = report.by_template["lead_nurture_email_2"]
    counts = ("sent", "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed")
    assert [first.count(c) for c in counts] == [4, 3, 2, 1, 1, 0, 1]
    assert [second.count(c) for c in counts] == [2, 1, 0, 0, 1, 0, 0]
    sequence = report.by_sequence["lead_nurture"]
    assert [sequence.count(c) for c in counts] == [6, 4, 2, 1, 2, 0, 1]
    assert first.rate("open rate") == 2 / 3 and first.rate("bounce rate") == 1 / 4
    assert report.funnel("lead_nurture") == [
        (1, "lead_nurture_email_1", 4),
        (2, "lead_nurture_email_2", 2),
    ]
    if world.fake is not None:  # one page of sent rows and one Contacts query
        assert len(world.fake.requests) == 2


def sent_row(store: SqliteStore, email: str, number: int, days_ago: int, delivery: str) -> None:
    row = store.add_row(
        new_row(
            email=email,
            email_number=number,
            template_id=f"lead_nurture_email_{number}",
            status=Status.SENT,
            sent_at=T0 - timedelta(days=days_ago),
        )
    )
    if delivery:
        store.update_row(row.id, RowUpdate(delivery=Delivery(delivery)))


def test_report_command_prints_counts_rates_and_funnel_since_a_date_and_writes_a_page(
    cli: Cli,  # noqa: F811  (the fixture from test_cli)
) -> None:
    cli.queue_file.parent.mkdir(parents=True)
    store = SqliteStore(cli.queue_file)
    sent_row(store, "old@example.com", 1, days_ago=30, delivery="clicked")
    sent_row(store, "a@example.com", 1, days_ago=1, delivery="opened")
    sent_row(store, "b@example.com", 1, days_ago=1, delivery="delivered")
    sent_row(store, "a@example.com", 2, days_ago=0, delivery="clicked")
    store.add_row(new_row(email="queued@example.com"))  # not sent: not counted
    store.close()

    result = cli("report", "--since", "7d", "--html", "report.html")

    assert result.code == 0, result.err
    text = "\n".join(result.out)
    assert "3 emails sent" in text
    sequence_line = next(line for line in result.out if line.startswith("lead_nurture "))
    assert sequence_line.split()[1:] == ["3", "3", "2", "1", "0", "0", "0"]
    assert "open 66.7%" in text
    funnel = [line.split() for line in result.out if line.startswith("    ") and "." in line[:7]]
    assert funnel == [
        ["1.", "lead_nurture_email_1", "2", "100.0%", "100.0%"],
        ["2.", "lead_nurture_email_2", "1", "50.0%", "50.0%"],
    ]
    page = (cli.folder / "report.html").read_text()
    assert (
        "<svg" in page
        and "<script" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert "lead_nurture_email_2 — 1 (50.0%)" in page


def test_report_html_escapes_names_a_marketer_typed() -> None:
    store = SqliteStore(":memory:")
    store.add_row(
        new_row(template_id="<img src=x onerror=alert(1)>", status=Status.SENT, sent_at=T0)
    )
    page = report_html(build_report(store, None))  # type: ignore[arg-type]
    assert "<img src=x" not in page and "&lt;img src=x" in page


def test_report_on_notion_reads_only_sent_rows_shows_progress_and_says_its_cost(
    notion_world: NotionWorld,
) -> None:
    store = notion_world.store
    for index in range(150):
        store.add_row(new_row(email=f"p{index}@example.com", status=Status.SENT, sent_at=T0))
    for index in range(30):  # queued and older sent rows are never read
        store.add_row(new_row(email=f"q{index}@example.com"))
        store.add_row(
            new_row(email=f"o{index}@example.com", status=Status.SENT, sent_at=T0 - timedelta(9))
        )
    lines: list[str] = []
    run_report(store, lines.append, T0 - timedelta(days=1), None)
    assert "  read 100 sent rows…" in lines
    # two pages of 100 sent rows, one Contacts query
    assert lines[-1] == "Read 150 sent rows in 3 Notion requests."


def test_templates_database_shows_the_same_counts_written_at_most_every_ten_minutes(
    notion_world: NotionWorld,
    tmp_path: Path,
    catalog: Catalog,
    clock: FakeClock,
    tokens: UnsubscribeTokens,
    outbox: OutboxMailer,
    make_worker: WorkerFactory,
) -> None:
    store = notion_world.store
    for template_id in ("lead_nurture_email_1", "lead_nurture_email_2", "lead_nurture_email_3"):
        store.upsert_template(
            Template(template_id, "S {{ first_name }}", "<p>{{ first_name }}</p>")
        )
    journal = Journal(tmp_path / "intake.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock)
    scripted_run(store, (journal, drainer), clock, tokens, outbox, make_worker)
    worker = make_worker(store, outbox)
    counts = TemplateCounts(rows=store, desk=store.template_desk, clock=clock)
    stats = store.gateway.stats

    before = stats.total
    assert counts.run_once() == 0 and stats.total == before  # first poll after start: nothing
    clock.advance(minutes=10)
    assert counts.run_once() == 2  # email 3 was never sent: its zeros are already right
    cost = stats.total - before

    pages = notion_world.fake.pages(notion_world.data_source_ids["Templates"])
    shown = {
        s.read_text(p["properties"]["Template ID"]): [
            int(s.read_number(p["properties"][name]) or 0) for name in s.COUNT_PROPERTIES.values()
        ]
        for p in pages
    }
    assert shown == {
        "lead_nurture_email_1": [4, 3, 2, 1, 1, 0, 1],
        "lead_nurture_email_2": [2, 1, 0, 0, 1, 0, 0],
        "lead_nurture_email_3": [0, 0, 0, 0, 0, 0, 0],
    }
    # one page of sent rows, the Unsubscribed contacts, the Templates; two rows written
    assert cost == 5
    before = stats.total
    clock.advance(minutes=9)
    assert counts.run_once() == 0 and stats.total == before  # not due: no request
    clock.advance(minutes=1)
    # due, nothing counted edited since: one single-row query for sent rows, one for contacts
    assert counts.run_once() == 0 and stats.total == before + 2
    assert worker.template_jobs == ()  # make_worker attaches none; wiring does (Notion)

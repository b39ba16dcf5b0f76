"""A Templates row whose HTML Body is empty sends its Notion page body as the email."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message
from typing import Any

from structlog.testing import capture_logs

from notion_queue.clock import FakeClock
from notion_queue.mail.outbox import OutboxMailer, sent_messages
from notion_queue.models import Status, Template
from notion_queue.store import notion_schema as s
from tests.conftest import NotionWorld, WorkerFactory, make_notion_world, new_row

CACHE = 120


def text(content: str, *, link: str | None = None, **annotations: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "text", "text": {"content": content}}
    if link:
        item["text"]["link"] = {"url": link}
    if annotations:
        item["annotations"] = annotations
    return item


def block(kind: str, *items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": kind, kind: {"rich_text": list(items), **extra}}


WELCOME = [
    block("heading_1", text("Welcome, "), text("{{ first_name }}")),
    block("heading_2", text("What happens next")),
    block(
        "paragraph",
        text("Hi {{ first_name }}, this is "),
        text("important", bold=True),
        text(". Read "),
        text("our guide", link="https://businessx.com/guide"),
        text("."),
    ),
    block("bulleted_list_item", text("Take the assessment")),
    block(
        "bulleted_list_item",
        text("Book a call"),
        children=[block("bulleted_list_item", text("it takes 30 minutes"))],
    ),
    block(
        "callout",
        text("Book your call", link="https://variable.invalid/calendly_link"),
        icon={"type": "emoji", "emoji": "📅"},
    ),
]


def add_page_template(
    world: NotionWorld,
    blocks: list[dict[str, Any]],
    *,
    html: str = "",
    template_id: str = "welcome",
) -> str:
    """A marketer's template: Subject set, HTML Body empty, the email written in the page."""
    props = s.template_properties(Template(template_id, "Welcome, {{ first_name }}", html))
    page = world.store.gateway.create_page(world.store.templates_ds, props, children=blocks)
    return str(page["id"])


def outbox_messages(outbox: OutboxMailer) -> list[Message]:
    return [message_from_bytes(p.read_bytes()) for p in sent_messages(outbox.folder)]


def part(message: Message, kind: str) -> str:
    for piece in message.walk():
        if piece.get_content_type() == f"text/{kind}":
            payload = piece.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode().replace("\r\n", "\n")
    raise AssertionError(f"no text/{kind} part")


def send(world: NotionWorld, make_worker: WorkerFactory, outbox: OutboxMailer, **row: Any) -> Any:
    world.store.add_row(new_row(template_id="welcome", dedupe_key=f"t/{len(row)}/{row}", **row))
    return make_worker(world.store, outbox, cache_seconds=CACHE).run_once()


def test_a_template_written_as_notion_blocks_is_delivered_as_that_document(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    add_page_template(world, WELCOME)

    assert send(world, make_worker, outbox)["sent"] == 1

    [message] = outbox_messages(outbox)
    html, plain = part(message, "html"), part(message, "plain")
    assert message["Subject"] == "Welcome, Sarah"
    assert '<h1 style="' in html and ">Welcome, Sarah</h1>" in html
    assert ">What happens next</h2>" in html
    assert "Hi Sarah, this is <strong>important</strong>. Read " in html
    assert '<a href="https://businessx.com/guide" style="' in html
    assert html.count("<li ") == 3 and "it takes 30 minutes</li>" in html
    # The callout that is only a link is a button to the campaign's booking link.
    assert (
        'href="https://calendly.com/businessx/diagnostic-call" style="display:inline-block' in html
    )
    assert 'width="600"' in html and "<style" not in html
    assert plain.splitlines()[:3] == ["Welcome, Sarah", "", "What happens next"]
    assert "Hi Sarah, this is important. Read our guide (https://businessx.com/guide)." in plain
    assert "- Take the assessment\n- Book a call\n  - it takes 30 minutes" in plain
    assert "Book your call (https://calendly.com/businessx/diagnostic-call)" in plain


def test_a_name_typed_in_the_page_is_escaped(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    add_page_template(world, [block("paragraph", text("Hi {{ first_name }} & co"))])

    send(world, make_worker, outbox, first_name="<b>Sam</b>")

    html = part(outbox_messages(outbox)[0], "html")
    assert "Hi &lt;b&gt;Sam&lt;/b&gt; &amp; co" in html and "<b>Sam" not in html


def test_editing_the_page_changes_the_next_email_within_the_cache_time(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    page_id = add_page_template(world, [block("paragraph", text("First draft"))])
    worker = make_worker(world.store, outbox, cache_seconds=CACHE)
    world.store.add_row(new_row(template_id="welcome", dedupe_key="a"))
    worker.run_once()

    [paragraph] = world.fake.blocks(page_id)
    world.fake.edit_block(paragraph["id"], {"rich_text": [{"text": {"content": "Final copy"}}]})
    clock.advance(seconds=CACHE)
    world.store.add_row(new_row(template_id="welcome", dedupe_key="b", email="bo@example.com"))
    worker.run_once()

    first, second = (part(m, "plain") for m in outbox_messages(outbox))
    assert "First draft" in first and "Final copy" in second


def test_steady_state_sending_reads_no_page_body_and_costs_what_an_html_template_costs(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    """Notion requests per email, after the first read, with a page-body template and with an
    HTML Body template: the same (the Templates query answers last_edited_time already)."""
    costs = {}
    for kind in ("page", "html"):
        world = make_notion_world(clock)
        if kind == "page":
            add_page_template(world, WELCOME)
        else:
            add_page_template(world, [], html="<p>Hi {{ first_name }}</p>")
        clock.advance(minutes=2)  # the page's last edit is a settled minute ago
        worker = make_worker(world.store, outbox, cache_seconds=CACHE)
        world.store.add_row(new_row(template_id="welcome", dedupe_key=f"{kind}/warm"))
        worker.run_once()
        world.fake.requests.clear()
        for n in range(5):  # every email after a cache refresh: the worst case
            clock.advance(seconds=CACHE)
            world.store.add_row(
                new_row(template_id="welcome", dedupe_key=f"{kind}/{n}", email=f"p{n}@example.com")
            )
            assert worker.run_once()["sent"] == 1
        costs[kind] = len(world.fake.requests)
        assert world.fake.count("list_children") == 0

    assert costs["page"] == costs["html"]


def test_only_the_page_bodies_of_templates_in_use_are_read(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    add_page_template(world, [block("paragraph", text("Hi"))])
    add_page_template(world, [block("paragraph", text("Unused"))], template_id="other")

    send(world, make_worker, outbox)

    assert world.fake.count("list_children") == 1


def test_a_page_body_is_read_again_only_after_its_page_changed(clock: FakeClock) -> None:
    """The Templates query answers each page's last_edited_time: the body is read again only
    when it moved."""
    world = make_notion_world(clock)
    page_id = add_page_template(world, WELCOME)
    clock.advance(minutes=2)

    for _ in range(2):
        world.store.all_templates()
        world.store.page_body("welcome")
    reads_before_edit = world.fake.count("list_children")
    [first, *_] = world.fake.blocks(page_id)
    world.fake.edit_block(first["id"], {"rich_text": [{"text": {"content": "New title"}}]})
    clock.advance(minutes=2)
    world.store.all_templates()
    body = world.store.page_body("welcome")

    # One read for the page and one for the nested list item, then nothing until the edit.
    assert reads_before_edit == 2
    assert world.fake.count("list_children") == 4
    assert "New title" in body


def test_an_html_body_that_is_set_still_wins(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    add_page_template(world, WELCOME, html="<p>Old style, {{ first_name }}</p>")

    send(world, make_worker, outbox)

    assert "Old style, Sarah" in part(outbox_messages(outbox)[0], "html")
    assert world.fake.count("list_children") == 0


def test_unknown_block_types_fail_the_row_naming_each(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    row_cells = {"type": "table_row", "table_row": {"cells": [[text("a")], [text("b")]]}}
    table = {
        "type": "table",
        "table": {
            "table_width": 2,
            "has_column_header": False,
            "has_row_header": False,
            "children": [row_cells],
        },
    }
    add_page_template(world, [block("paragraph", text("Hi")), table, block("toggle", text("more"))])

    with capture_logs() as logs:
        summary = send(world, make_worker, outbox)

    assert summary["failed"] == 1 and outbox_messages(outbox) == []
    [row] = world.store.all_rows()
    assert row.status is Status.FAILED
    assert "block types 'table', 'toggle' are not supported in emails" in (row.error_message)
    assert any(e["event"] == "row_failed" for e in logs)


def test_one_unknown_block_type_is_named_in_the_singular(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    add_page_template(world, [{"type": "code", "code": {"rich_text": [], "language": "python"}}])

    send(world, make_worker, outbox)

    [row] = world.store.all_rows()
    assert "block type 'code' is not supported in emails" in row.error_message


def test_an_event_value_never_becomes_a_link_in_a_page_body(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    add_page_template(
        world,
        [block("paragraph", text("Your page", link="https://variable.invalid/business_name"))],
    )

    send(world, make_worker, outbox)

    [row] = world.store.all_rows()
    assert row.status is Status.FAILED and outbox_messages(outbox) == []
    assert "puts {{ business_name }} in a href" in row.error_message


def test_a_paragraph_that_is_only_a_link_is_a_button_and_a_sentence_link_is_not(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    add_page_template(
        world,
        [
            block("paragraph", text("Take the assessment", link="https://businessx.com/a")),
            block("paragraph", text("or "), text("read more", link="https://businessx.com/b")),
        ],
    )

    send(world, make_worker, outbox)

    html = part(outbox_messages(outbox)[0], "html")
    assert '<a href="https://businessx.com/a" style="display:inline-block' in html
    assert '<a href="https://businessx.com/b" style="color:' in html


def test_a_condition_written_as_its_own_paragraphs_spans_the_blocks_between(
    clock: FakeClock, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    world = make_notion_world(clock)
    add_page_template(
        world,
        [
            block("paragraph", text("{% if business_name is defined %}")),
            block("heading_2", text("For {{ business_name }}")),
            block("paragraph", text("{% endif %}")),
            block("paragraph", text("Bye")),
        ],
    )

    send(world, make_worker, outbox)

    message = outbox_messages(outbox)[0]
    assert ">For Sarah&#39;s Salon</h2>" in part(message, "html")
    assert part(message, "plain") == "For Sarah's Salon\n\nBye\n"
    assert "{%" not in part(message, "html")


def test_an_edit_in_the_same_minute_as_the_read_is_not_missed(clock: FakeClock) -> None:
    """Notion cuts last_edited_time to the minute: a body read in the minute of its last edit
    is read once more at the next refresh, so an edit later in that minute still arrives."""
    world = make_notion_world(clock)
    page_id = add_page_template(world, [block("paragraph", text("Draft"))])
    world.store.all_templates()
    world.store.page_body("welcome")
    [paragraph] = world.fake.blocks(page_id)
    clock.advance(seconds=20)  # same minute: the page's last_edited_time does not move
    world.fake.edit_block(paragraph["id"], {"rich_text": [{"text": {"content": "Final"}}]})

    world.store.all_templates()
    assert "Final" in world.store.page_body("welcome")

"""Send Test To on a Templates row: within one poll the worker sends that template, rendered with
the seeds' sample values, to that address, then clears the request and says what happened; the
same poll keeps each row's Preview link filled. Through the fake Notion, as a marketer uses it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from notion_queue.clock import FakeClock
from notion_queue.errors import RetryableError
from notion_queue.mail.base import OutgoingEmail, SendResult
from notion_queue.mail.outbox import OutboxMailer
from notion_queue.models import ContactData, Template
from notion_queue.sequences import Catalog
from notion_queue.store import notion_schema as s
from notion_queue.test_sends import template_jobs
from notion_queue.unsubscribe import UnsubscribeTokens
from notion_queue.web.preview_page import PreviewTokens
from notion_queue.worker import Worker
from tests.conftest import T0, NotionWorld, WorkerFactory

MARKETER = "marketer@businessx.com"


@dataclass
class Recording:
    """The worker's mailer (the outbox), remembering what it was handed."""

    inner: OutboxMailer
    sent: list[OutgoingEmail] = field(default_factory=list)
    fail_next: int = 0

    def send(self, email: OutgoingEmail) -> SendResult:
        if self.fail_next:
            self.fail_next -= 1
            raise RetryableError("mailer unreachable")
        self.sent.append(email)
        return self.inner.send(email)


@pytest.fixture
def mailer(outbox: OutboxMailer) -> Recording:
    return Recording(outbox)


@pytest.fixture
def worker(
    notion_world: NotionWorld, make_worker: WorkerFactory, mailer: Recording, catalog: Catalog
) -> Worker:
    worker = make_worker(notion_world.store, mailer)
    worker.template_jobs = template_jobs(worker, notion_world.store, catalog)
    return worker


def template_page(world: NotionWorld, template_id: str) -> dict[str, Any]:
    pages = world.fake.pages(world.data_source_ids["Templates"])
    return next(p for p in pages if s.read_text(p["properties"]["Template ID"]) == template_id)


def ask_for_test(world: NotionWorld, template_id: str, address: str) -> str:
    page = template_page(world, template_id)
    world.fake.edit_page(page["id"], {s.SEND_TEST_TO: {"email": address}})
    return str(page["id"])


def seed(world: NotionWorld, *templates: Template) -> None:
    for template in templates:
        world.store.upsert_template(template)
    world.fake.requests.clear()


WELCOME = Template(
    "lead_nurture_email_1",
    "Hello {{ first_name }}",
    "<p>Hi {{ first_name }}</p>",
    "Hi {{ first_name }}",
)


def test_a_test_send_asked_in_notion_goes_out_within_one_poll_and_is_answered_on_the_row(
    notion_world: NotionWorld, worker: Worker, mailer: Recording, clock: FakeClock
) -> None:
    seed(notion_world, WELCOME)
    page_id = ask_for_test(notion_world, "lead_nurture_email_1", MARKETER)

    summary = worker.run_once()

    assert [e.to for e in mailer.sent] == [MARKETER]
    email = mailer.sent[0]
    assert email.subject == "[TEST] Hello Sarah" and "Hi Sarah" in email.html
    assert email.tags == {"template": "lead_nurture_email_1", "test_send": "true"}
    props = notion_world.fake.page(page_id)["properties"]
    assert props[s.SEND_TEST_TO]["email"] is None
    assert s.read_date(props[s.LAST_TEST]) == T0
    message_id = mailer.inner.send(email).message_id  # the outbox answers a replay with the id
    assert s.read_text(props[s.TEST_RESULT]) == f"sent to {MARKETER} (id {message_id})"
    # never a sequence send: no queue row, no contact, nothing counted
    assert summary.handled == 0
    assert notion_world.fake.pages(notion_world.data_source_ids["Email Queue"]) == []
    assert notion_world.fake.pages(notion_world.data_source_ids["Contacts"]) == []


def test_the_poll_fills_each_preview_link_once_then_costs_one_query(
    notion_world: NotionWorld, worker: Worker, tokens: UnsubscribeTokens, clock: FakeClock
) -> None:
    seed(notion_world, WELCOME, Template("lead_nurture_email_2", "S", "<p>x</p>"))
    stats = notion_world.store.gateway.stats

    worker.run_once()
    first = dict(stats.calls)
    clock.advance(60)  # the next poll
    worker.run_once()
    second = {k: v - first.get(k, 0) for k, v in stats.calls.items() if v != first.get(k, 0)}

    preview = template_page(notion_world, "lead_nurture_email_2")["properties"][s.PREVIEW]["url"]
    assert preview == PreviewTokens(tokens).url(
        "https://funnel.businessx.com", "lead_nurture_email_2"
    )
    assert first["answer_template_request"] == 2
    assert second == {"query_template_requests": 1, "query": 1}  # + the due-rows query
    clock.advance(5)  # a wake-up for a row due soon: no second Templates query
    worker.run_once()
    assert stats.calls["query_template_requests"] == 2


def test_a_suppressed_address_is_refused_and_the_row_says_so(
    notion_world: NotionWorld, worker: Worker, mailer: Recording
) -> None:
    seed(notion_world, WELCOME)
    notion_world.store.upsert_contact(ContactData(email=MARKETER, unsubscribed=True))
    page_id = ask_for_test(notion_world, "lead_nurture_email_1", MARKETER)

    worker.run_once()

    assert mailer.sent == []
    result = s.read_text(notion_world.fake.page(page_id)["properties"][s.TEST_RESULT])
    assert result == f"not sent: {MARKETER} is unsubscribed or suppressed"


def test_a_template_that_cannot_render_says_why_in_test_result(
    notion_world: NotionWorld, worker: Worker, mailer: Recording
) -> None:
    seed(notion_world, Template("lead_nurture_email_1", "Hi", "<p>{{ no_such_value }}</p>"))
    page_id = ask_for_test(notion_world, "lead_nurture_email_1", MARKETER)

    worker.run_once()

    assert mailer.sent == []
    props = notion_world.fake.page(page_id)["properties"]
    assert "no_such_value" in s.read_text(props[s.TEST_RESULT])
    assert props[s.SEND_TEST_TO]["email"] is None


def test_a_mailer_outage_leaves_the_request_for_the_next_poll(
    notion_world: NotionWorld, worker: Worker, mailer: Recording, clock: FakeClock
) -> None:
    seed(notion_world, WELCOME)
    page_id = ask_for_test(notion_world, "lead_nurture_email_1", MARKETER)
    mailer.fail_next = 1

    worker.run_once()
    assert notion_world.fake.page(page_id)["properties"][s.SEND_TEST_TO]["email"] == MARKETER
    clock.advance(60)
    worker.run_once()

    assert [e.to for e in mailer.sent] == [MARKETER]
    assert notion_world.fake.page(page_id)["properties"][s.SEND_TEST_TO]["email"] is None


def test_a_templates_database_set_up_before_test_sends_turns_them_off_saying_what_to_do(
    notion_world: NotionWorld, worker: Worker, mailer: Recording, clock: FakeClock
) -> None:
    seed(notion_world, WELCOME)
    notion_world.store.gateway.update_data_source(
        notion_world.data_source_ids["Templates"], {s.SEND_TEST_TO: None, s.PREVIEW: None}
    )
    stats = notion_world.store.gateway.stats

    with capture_logs() as logs:
        summary = worker.run_once()
        clock.advance(60)
        worker.run_once()

    assert summary.handled == 0 and mailer.sent == []
    assert stats.calls.get("query_template_requests") == 1  # asked once, then left off
    [off] = [e for e in logs if e["event"] == "test_sends_off"]
    assert "setup_notion.py" in off["action"]

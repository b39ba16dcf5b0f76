"""GET /preview/<template id>?token=…: the Templates row's Preview link shows a template as a
recipient sees it, with the seeds' sample values, to whoever holds a signed link, and nobody else."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from notion_queue.clock import FakeClock
from notion_queue.intake.journal import Journal
from notion_queue.models import Template
from notion_queue.sequences import Catalog
from notion_queue.settings import Settings
from notion_queue.store.base import QueueStore
from notion_queue.unsubscribe import UnsubscribeTokens
from notion_queue.web.app import create_app
from notion_queue.web.preview_page import PreviewTokens

BASE = "https://funnel.businessx.com"


@pytest.fixture
def client(
    store: QueueStore, tmp_path: Path, clock: FakeClock, tokens: UnsubscribeTokens, catalog: Catalog
) -> TestClient:
    settings = Settings(public_base_url=BASE)  # type: ignore[call-arg]
    journal = Journal(tmp_path / "intake.sqlite3")
    app = create_app(
        settings,
        journal=journal,
        drainer=None,
        clock=clock,
        unsubscribe=tokens,
        catalog=catalog,
        templates=store,
    )
    return TestClient(app)


def preview_path(tokens: UnsubscribeTokens, template_id: str, query: str = "") -> str:
    url = PreviewTokens(tokens).url(BASE, template_id)
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}{query}"


def test_preview_shows_subject_html_in_a_sandboxed_frame_and_text_with_sample_values(
    client: TestClient, tokens: UnsubscribeTokens
) -> None:
    page = client.get(preview_path(tokens, "lead_nurture_email_1"))

    assert page.status_code == 200
    assert "Sarah, your free BusinessX assessment is ready" in page.text
    assert '<iframe id=html sandbox=""' in page.text and "srcdoc=" in page.text
    assert "Hi Sarah," in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert page.headers["referrer-policy"] == "no-referrer"


def test_a_template_edited_in_the_templates_database_is_what_the_preview_shows(
    client: TestClient, tokens: UnsubscribeTokens, store: QueueStore
) -> None:
    store.upsert_template(
        Template(
            "lead_nurture_email_1",
            "Edited for {{ first_name }}",
            "<p>New {{ first_name }}</p>",
            "New",
        )
    )
    page = client.get(preview_path(tokens, "lead_nurture_email_1"))
    assert "Edited for Sarah" in page.text and "New Sarah" in page.text


@pytest.mark.parametrize(
    "path",
    [
        "/preview/lead_nurture_email_1",
        "/preview/lead_nurture_email_1?token=",
        "/preview/lead_nurture_email_1?token=AAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_a_missing_or_forged_token_is_refused(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 403
    assert "Sarah" not in page.text


def test_one_templates_token_does_not_open_another_template(
    client: TestClient, tokens: UnsubscribeTokens
) -> None:
    token = PreviewTokens(tokens).token("lead_nurture_email_1")
    assert client.get(f"/preview/lead_nurture_email_2?token={token}").status_code == 403


def test_query_parameters_override_sample_values_as_typed_event_fields(
    client: TestClient, tokens: UnsubscribeTokens
) -> None:
    page = client.get(preview_path(tokens, "lead_nurture_email_1", "&first_name=Bob&nothing=x"))
    assert page.status_code == 200
    assert "Bob, your free BusinessX assessment" in page.text
    assert "Ignored (not fields the catalog declares): nothing" in page.text

    bad_number = client.get(preview_path(tokens, "lead_nurture_email_1", "&red_systems=lots"))
    assert bad_number.status_code == 400 and "red_systems" in bad_number.text


def test_an_override_never_becomes_a_link_target_unless_a_declared_url_field_allows_it(
    client: TestClient, tokens: UnsubscribeTokens
) -> None:
    evil = client.get(
        preview_path(tokens, "onboarding_phase1_email_1", "&portal_url=https://evil.example/x")
    )
    assert evil.status_code == 400 and "evil.example" not in evil.text

    allowed = client.get(
        preview_path(
            tokens, "onboarding_phase1_email_1", "&portal_url=https://portal.businessx.com/bob"
        )
    )
    assert allowed.status_code == 200
    assert "https://portal.businessx.com/bob" in allowed.text
    # a value of an undeclared name is dropped, never rendered (let alone linked)
    sneaky = client.get(
        preview_path(tokens, "onboarding_phase1_email_1", "&calendly_link=https://evil.example")
    )
    assert sneaky.status_code == 200 and "evil.example" not in sneaky.text.split("Ignored")[0]


def test_an_unknown_template_is_404(client: TestClient, tokens: UnsubscribeTokens) -> None:
    assert client.get(preview_path(tokens, "no_such_template")).status_code == 404

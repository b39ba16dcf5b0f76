"""The queue page (/queue): only for whoever knows ADMIN_TOKEN, on every store; lists rows by
status, sequence and address, a page at a time; shows a row's email as it will be sent; pauses,
resumes, cancels and retries a row through the one door for status changes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from notion_queue.clock import FakeClock
from notion_queue.intake.journal import Journal
from notion_queue.models import RowUpdate, Status
from notion_queue.production import production_problems
from notion_queue.sequences import Catalog
from notion_queue.settings import Settings
from notion_queue.store.base import QueueStore
from notion_queue.transitions import change_status
from notion_queue.unsubscribe import UnsubscribeTokens
from notion_queue.web.app import create_app
from notion_queue.web.queue_auth import COOKIE
from notion_queue.web.queue_page import PAGE_SIZE, Filters
from tests.conftest import T0, new_row

TOKEN = "queue-page-admin-token-0123456789abcdef"


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    built = Journal(tmp_path / "intake.sqlite3")
    yield built
    built.close()


def client_for(
    store: QueueStore | None,
    journal: Journal,
    clock: FakeClock,
    catalog: Catalog,
    tokens: UnsubscribeTokens,
    **settings: Any,
) -> TestClient:
    app = create_app(
        Settings(public_base_url="https://funnel.businessx.com", **settings),
        journal=journal,
        drainer=None,
        clock=clock,
        unsubscribe=tokens,
        catalog=catalog,
        store=store,
    )
    return TestClient(app, base_url="https://testserver")


@pytest.fixture
def client(
    store: QueueStore,
    journal: Journal,
    clock: FakeClock,
    catalog: Catalog,
    tokens: UnsubscribeTokens,
) -> TestClient:
    return client_for(store, journal, clock, catalog, tokens, admin_token=TOKEN)


@pytest.fixture
def signed_in(client: TestClient) -> TestClient:
    response = client.post("/queue/login", data={"token": TOKEN}, follow_redirects=False)
    assert response.status_code == 303
    return client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


# ------------------------------------------------------------------ who may see it


@pytest.mark.parametrize("token", [None, "", "   "])
def test_the_page_is_a_404_when_admin_token_is_unset_or_empty(
    store: QueueStore,
    journal: Journal,
    clock: FakeClock,
    catalog: Catalog,
    tokens: UnsubscribeTokens,
    token: str | None,
) -> None:
    client = client_for(store, journal, clock, catalog, tokens, admin_token=token)
    assert client.get("/queue").status_code == 404
    assert client.post("/queue/login", data={"token": ""}).status_code == 404


def test_without_signing_in_the_page_asks_for_the_token_and_shows_no_row(
    store: QueueStore, client: TestClient
) -> None:
    row = store.add_row(new_row())
    response = client.get("/queue")
    assert response.status_code == 401
    assert 'type="password"' in response.text and "sarah@example.com" not in response.text
    assert client.get(f"/queue/rows/{row.id}").status_code == 401
    assert client.post(f"/queue/rows/{row.id}/pause", data={"csrf": "x"}).status_code == 401
    assert store.get_row(row.id).status is Status.QUEUED


def test_a_wrong_token_is_refused_and_never_logged(client: TestClient) -> None:
    with capture_logs() as logs:
        response = client.post("/queue/login", data={"token": "guess"}, follow_redirects=False)
    assert response.status_code == 401
    assert COOKIE not in response.cookies
    assert "not the admin token" in response.text
    assert [e["event"] for e in logs] == ["queue_page_sign_in_refused"]
    assert "guess" not in repr(logs)


def test_signing_in_sets_a_strict_http_only_cookie_that_is_not_the_token(
    client: TestClient,
) -> None:
    response = client.post("/queue/login", data={"token": TOKEN}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/queue"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/queue" in cookie
    assert "Secure" not in cookie  # development (the outbox): plain http://localhost works
    assert TOKEN not in cookie
    assert client.get("/queue").status_code == 200


def test_in_production_the_cookie_is_secure(
    store: QueueStore,
    journal: Journal,
    clock: FakeClock,
    catalog: Catalog,
    tokens: UnsubscribeTokens,
) -> None:
    client = client_for(
        store,
        journal,
        clock,
        catalog,
        tokens,
        admin_token=TOKEN,
        mail_backend="resend",
        resend_api_key="re_test_key",
    )
    response = client.post("/queue/login", data={"token": TOKEN}, follow_redirects=False)
    assert "Secure" in response.headers["set-cookie"]


def test_a_script_may_use_a_bearer_header_instead(store: QueueStore, client: TestClient) -> None:
    row = store.add_row(new_row())
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/queue", headers=bearer).status_code == 200
    assert client.get("/queue", headers={"Authorization": "Bearer nope"}).status_code == 401
    response = client.post(f"/queue/rows/{row.id}/pause", headers=bearer, follow_redirects=False)
    assert response.status_code == 303
    assert store.get_row(row.id).status is Status.PAUSED


def test_an_action_without_the_csrf_token_changes_nothing(
    store: QueueStore, signed_in: TestClient
) -> None:
    row = store.add_row(new_row())
    for data in ({}, {"csrf": "0" * 64}):
        response = signed_in.post(f"/queue/rows/{row.id}/pause", data=data)
        assert response.status_code == 403
    assert store.get_row(row.id).status is Status.QUEUED


def test_signing_out_ends_the_session(signed_in: TestClient) -> None:
    csrf = csrf_of(signed_in.get("/queue").text)
    response = signed_in.post("/queue/logout", data={"csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303
    signed_in.cookies.clear()  # what the browser does with the expired cookie
    assert signed_in.get("/queue").status_code == 401


def test_pages_are_not_cached_framed_or_able_to_run_scripts(signed_in: TestClient) -> None:
    response = signed_in.get("/queue")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_production_refuses_a_short_admin_token_and_accepts_a_long_one() -> None:
    base: dict[str, Any] = {
        "mail_backend": "resend",
        "resend_api_key": "re_test_key",
        "public_base_url": "https://funnel.businessx.com",
        "webhook_secret": "w" * 32,
    }
    assert production_problems(Settings(**base, admin_token=TOKEN)) == []
    assert production_problems(Settings(**base)) == []
    [problem] = production_problems(Settings(**base, admin_token="short"))
    assert problem.startswith("ADMIN_TOKEN is shorter than 32 characters") and "short" not in (
        problem.removeprefix("ADMIN_TOKEN is shorter")
    )
    [empty] = production_problems(Settings(**base, admin_token=""))
    assert empty.startswith("ADMIN_TOKEN is set but empty")


def test_the_admin_token_is_a_secret_the_logs_blank() -> None:
    assert TOKEN in Settings(admin_token=TOKEN).secrets()


# ------------------------------------------------------------------ the list


def test_rows_are_filtered_by_status_sequence_and_address(
    store: QueueStore, signed_in: TestClient
) -> None:
    sarah = store.add_row(new_row())
    store.add_row(new_row(email="tom@example.com"))
    christmas = store.add_row(
        new_row(sequence="christmas", template_id="christmas_email_1", email="ann@example.com")
    )
    paused = change_status(store, store.add_row(new_row(email="ed@example.com")), Status.PAUSED)
    assert paused is not None

    def listed(query: str) -> set[str]:
        response = signed_in.get(f"/queue?{query}")
        assert response.status_code == 200
        return set(re.findall(r"<td>([a-z]+@example\.com)</td>", response.text))

    assert listed("") == {
        "sarah@example.com",
        "tom@example.com",
        "ann@example.com",
        "ed@example.com",
    }
    assert listed("status=paused") == {"ed@example.com"}
    assert listed("sequence=christmas") == {christmas.email}
    assert listed("email=Sarah@Example.com") == {sarah.email}
    assert listed("email=sarah@example.com&status=paused") == set()
    assert listed("sequence=christmas&status=queued") == {christmas.email}


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("status=sent'--", "status"),
        ("sequence=<script>", "sequence"),
        ("email=not-an-address", "address"),
        ("page=0", "page"),
        ("page=abc", "page"),
    ],
)
def test_a_bad_filter_is_a_400_saying_which(
    signed_in: TestClient, query: str, problem: str
) -> None:
    response = signed_in.get(f"/queue?{query}")
    assert response.status_code == 400
    assert f"Bad filter: {problem}" in response.text
    assert "<script>" not in response.text


def test_a_long_queue_is_shown_a_page_at_a_time(store: QueueStore, signed_in: TestClient) -> None:
    for n in range(PAGE_SIZE + 3):
        store.add_row(new_row(email=f"r{n:03d}@example.com", scheduled_time=T0 + timedelta(n)))
    first = signed_in.get("/queue?status=queued").text
    second = signed_in.get("/queue?status=queued&page=2").text
    assert first.count("@example.com</td>") == PAGE_SIZE and "Next →" in first
    assert second.count("@example.com</td>") == 3 and "Next →" not in second
    assert 'href="/queue?status=queued"' in second  # ← Previous keeps the filter
    assert Filters(sequence="1", page=2).query(1) == "sequence=1"


# ------------------------------------------------------------------ one row


def test_a_row_shows_its_email_rendered_in_a_sandboxed_frame(
    store: QueueStore, signed_in: TestClient
) -> None:
    row = store.add_row(new_row())
    response = signed_in.get(f"/queue/rows/{row.id}")
    assert response.status_code == 200
    assert '<iframe sandbox="" title="The email" srcdoc="' in response.text
    assert "Hi Sarah" in response.text  # the rendered text part
    assert "https://funnel.businessx.com/unsubscribe?token=" in response.text


def test_a_row_that_cannot_be_rendered_says_why(store: QueueStore, signed_in: TestClient) -> None:
    row = store.add_row(new_row(template_id="no_such_template"))
    response = signed_in.get(f"/queue/rows/{row.id}")
    assert response.status_code == 200
    assert "This row cannot be rendered: Template ID &#x27;no_such_template&#x27;" in response.text


@pytest.mark.parametrize("row_id", ["no-such-row-0000", "..%2F..%2Fetc"])
def test_an_unknown_row_is_a_404(signed_in: TestClient, row_id: str) -> None:
    assert signed_in.get(f"/queue/rows/{row_id}").status_code == 404


# ------------------------------------------------------------------ the buttons


def test_pause_resume_cancel_and_retry_change_the_row_through_the_one_door(
    store: QueueStore, signed_in: TestClient
) -> None:
    row = store.add_row(new_row())
    csrf = csrf_of(signed_in.get("/queue").text)

    def press(action: str, row_id: str) -> int:
        back = "/queue?status=queued"
        data = {"csrf": csrf, "back": back}
        response = signed_in.post(
            f"/queue/rows/{row_id}/{action}", data=data, follow_redirects=False
        )
        if response.status_code == 303:
            assert response.headers["location"] == back
        return response.status_code

    with capture_logs() as logs:
        assert press("pause", row.id) == 303
        assert store.get_row(row.id).status is Status.PAUSED
        assert press("resume", row.id) == 303
        assert store.get_row(row.id).status is Status.QUEUED
        assert press("cancel", row.id) == 303
    cancelled = store.get_row(row.id)
    assert cancelled.status is Status.CANCELLED
    assert cancelled.error_message == "cancelled: from the queue page"
    assert [e["action"] for e in logs if e["event"] == "queue_page_action"] == [
        "pause",
        "resume",
        "cancel",
    ]

    failed = store.add_row(new_row(email="tom@example.com"))
    store.update_row(failed.id, RowUpdate(attempts=5))
    marked = change_status(store, store.get_row(failed.id), Status.FAILED, error_message="boom")
    assert marked is not None
    assert press("retry", failed.id) == 303
    retried = store.get_row(failed.id)
    assert (retried.status, retried.attempts, retried.error_message) == (Status.QUEUED, 0, "")


def test_a_button_for_a_row_that_changed_meanwhile_changes_nothing(
    store: QueueStore, signed_in: TestClient
) -> None:
    row = store.add_row(new_row())
    csrf = csrf_of(signed_in.get("/queue").text)
    change_status(store, row, Status.SENT, resend_email_id="re_1")  # the worker sent it

    response = signed_in.post(f"/queue/rows/{row.id}/pause", data={"csrf": csrf})
    assert response.status_code == 409
    assert "This row is sent now, so it cannot be paused." in response.text
    assert store.get_row(row.id).status is Status.SENT
    resume = signed_in.post(f"/queue/rows/{row.id}/resume", data={"csrf": csrf})
    assert resume.status_code == 409  # only a marketer's pause is resumed


def test_only_the_buttons_a_row_can_use_are_shown(store: QueueStore, signed_in: TestClient) -> None:
    row = store.add_row(new_row())
    page = signed_in.get(f"/queue/rows/{row.id}").text
    assert ">Pause<" in page and ">Cancel<" in page
    assert ">Resume<" not in page and ">Retry<" not in page


def test_a_row_waiting_for_review_is_approved_or_cancelled_from_the_page(
    store: QueueStore, signed_in: TestClient
) -> None:
    approved = store.add_row(new_row(status=Status.REVIEW))
    dropped = store.add_row(new_row(email="tom@example.com", status=Status.REVIEW))
    page = signed_in.get(f"/queue/rows/{approved.id}").text
    assert ">Approve<" in page and ">Cancel<" in page
    assert ">Pause<" not in page and ">Resume<" not in page
    csrf = csrf_of(page)

    for row_id, action in ((approved.id, "approve"), (dropped.id, "cancel")):
        response = signed_in.post(
            f"/queue/rows/{row_id}/{action}", data={"csrf": csrf}, follow_redirects=False
        )
        assert response.status_code == 303
    assert store.get_row(approved.id).status is Status.QUEUED
    assert store.get_row(dropped.id).status is Status.CANCELLED
    again = signed_in.post(f"/queue/rows/{approved.id}/approve", data={"csrf": csrf})
    assert again.status_code == 409  # only a row in review is approved


def test_an_action_never_redirects_to_another_site(
    store: QueueStore, signed_in: TestClient
) -> None:
    row = store.add_row(new_row())
    csrf = csrf_of(signed_in.get("/queue").text)
    for back in (
        "https://evil.example/",
        "//evil.example/queue",
        "/queue/..\\evil",
        "/queue\r\nSet-Cookie: x=y",
    ):
        for action in ("pause", "resume"):
            response = signed_in.post(
                f"/queue/rows/{row.id}/{action}",
                data={"csrf": csrf, "back": back},
                follow_redirects=False,
            )
            assert response.status_code == 303
            assert response.headers["location"] == "/queue"
    assert store.get_row(row.id).status is Status.QUEUED


def test_an_unknown_action_is_a_404(store: QueueStore, signed_in: TestClient) -> None:
    row = store.add_row(new_row())
    csrf = csrf_of(signed_in.get("/queue").text)
    response = signed_in.post(f"/queue/rows/{row.id}/delete", data={"csrf": csrf})
    assert response.status_code == 404
    assert store.get_row(row.id).status is Status.QUEUED

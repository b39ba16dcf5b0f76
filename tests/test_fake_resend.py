"""FakeResend, driven through the real resend SDK pointed at it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import resend
from resend.exceptions import (
    InvalidApiKeyError,
    MissingApiKeyError,
    MissingRequiredFieldsError,
    RateLimitError,
    ResendError,
    ValidationError,
)
from resend.http_client import HTTPClient
from resend.http_client_requests import RequestsClient

from notion_queue.clock import FakeClock
from notion_queue.testing.fake_resend import FakeResend, SentEmail

KEY = "re_test_key"


class HttpxTestClient(HTTPClient):
    """The SDK's sync client seam, over an httpx transport. Transport errors propagate, so the
    SDK wraps them as ResendError(code=500, error_type="HttpClientError") as it does in real life.
    """

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self.client = httpx.Client(transport=transport)

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        json: dict[str, object] | list[object] | None = None,
        files: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        response = self.client.request(method, url, headers=headers, json=json)
        return response.content, response.status_code, dict(response.headers)


@pytest.fixture(autouse=True)
def _restore_resend_globals() -> Iterator[None]:
    saved = (resend.api_key, resend.api_url, resend.default_http_client)
    yield
    client = resend.default_http_client
    if isinstance(client, HttpxTestClient):
        client.client.close()
    resend.api_key, resend.api_url, resend.default_http_client = saved


def point_sdk_at(fake: FakeResend, api_key: str = KEY) -> None:
    resend.api_key = api_key
    resend.api_url = "http://fake-resend"
    resend.default_http_client = HttpxTestClient(fake.transport())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 12, 1, 10, 0, tzinfo=UTC))


@pytest.fixture
def fake(clock: FakeClock) -> FakeResend:
    """No rate limit here: the clock stands still, so tests that are not about pacing would trip it."""
    fake = FakeResend(clock, rate_limit=None)
    point_sdk_at(fake)
    return fake


def email(**overrides: Any) -> Any:
    params: dict[str, Any] = {
        "from": "Acme <hi@businessx.com>",
        "to": ["lead@example.com"],
        "subject": "Following up",
        "html": "<p>Hello</p>",
        "text": "Hello",
    }
    params.update(overrides)
    return params


def send(params: Any, key: str | None = None) -> Any:
    return resend.Emails.send(params, {"idempotency_key": key} if key is not None else None)


# ---------------------------------------------------------------- sending and recording


def test_send_is_recorded_with_headers_and_tags(fake: FakeResend, clock: FakeClock) -> None:
    params = email(
        reply_to="sales@businessx.com",
        headers={
            "List-Unsubscribe": "<https://businessx.com/u/TOKEN>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        tags=[{"name": "sequence", "value": "seq-42"}, {"name": "step", "value": "2"}],
    )
    response = send(params, "seq-42/step-2/lead-9001")

    assert fake.sent == [
        SentEmail(
            id=response["id"],
            sender="Acme <hi@businessx.com>",
            to=("lead@example.com",),
            subject="Following up",
            html="<p>Hello</p>",
            text="Hello",
            reply_to=("sales@businessx.com",),
            headers={
                "List-Unsubscribe": "<https://businessx.com/u/TOKEN>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            tags={"sequence": "seq-42", "step": "2"},
            idempotency_key="seq-42/step-2/lead-9001",
            at=clock.now(),
        )
    ]
    assert fake.sent_to("Lead <LEAD@example.com>") == fake.sent
    assert fake.sent_to("other@example.com") == []
    assert [(r.method, r.path, r.status, r.name) for r in fake.requests] == [
        ("POST", "/emails", 200, None)
    ]
    assert fake.count() == 1 and fake.count(200) == 1


def test_ids_are_seeded_uuid4() -> None:
    ids = []
    for _ in range(2):
        fake = FakeResend(FakeClock(), rate_limit=None, seed=7)
        point_sdk_at(fake)
        ids.append(send(email())["id"])
    assert ids[0] == ids[1]
    assert ids[0][14] == "4"


def test_retrieve_an_accepted_email(fake: FakeResend) -> None:
    email_id = send(email())["id"]
    got = resend.Emails.get(email_id)
    assert got["id"] == email_id and got["to"] == ["lead@example.com"]
    with pytest.raises(ResendError) as caught:
        resend.Emails.get("00000000-0000-4000-8000-000000000000")
    assert (caught.value.code, caught.value.error_type) == (404, "not_found")


# ---------------------------------------------------------------- idempotency


def test_idempotent_replay_returns_same_id_and_sends_nothing(fake: FakeResend) -> None:
    first = send(email(), "welcome/1")
    second = send(email(), "welcome/1")

    assert second["id"] == first["id"]
    # Resend documents the same answer and nothing more: no header tells a replay apart.
    assert second["http_headers"] == first["http_headers"]
    assert "idempotent-replayed" not in second["http_headers"]
    assert len(fake.sent) == 1
    assert fake.count(200) == 2
    assert [r.replayed for r in fake.requests] == [False, True]


def test_same_key_different_payload_is_409(fake: FakeResend) -> None:
    send(email(), "welcome/1")
    with pytest.raises(ResendError) as caught:
        send(email(subject="Something else"), "welcome/1")
    assert (caught.value.code, caught.value.error_type) == (409, "invalid_idempotent_request")
    assert len(fake.sent) == 1


def test_key_held_in_flight_is_409_concurrent(fake: FakeResend) -> None:
    fake.hold_in_flight("welcome/1")
    with pytest.raises(ResendError) as caught:
        send(email(), "welcome/1")
    assert (caught.value.code, caught.value.error_type) == (409, "concurrent_idempotent_requests")
    assert fake.sent == []

    fake.release_in_flight("welcome/1")
    send(email(), "welcome/1")
    assert len(fake.sent) == 1


def test_key_is_forgotten_after_24_hours(fake: FakeResend, clock: FakeClock) -> None:
    first = send(email(), "welcome/1")
    clock.advance(hours=23, minutes=59)
    assert send(email(), "welcome/1")["id"] == first["id"]
    clock.advance(minutes=1)
    assert send(email(subject="New payload is fine now"), "welcome/1")["id"] != first["id"]
    assert len(fake.sent) == 2


@pytest.mark.parametrize("key", ["", "k" * 257])
def test_invalid_idempotency_key_is_400(fake: FakeResend, key: str) -> None:
    with pytest.raises(ResendError) as caught:
        send(email(), key)
    assert (caught.value.code, caught.value.error_type) == (400, "invalid_idempotency_key")
    assert fake.sent == []


def test_failed_request_stores_nothing_for_its_key(fake: FakeResend) -> None:
    fake.fail_next(status=500, name="application_error")
    with pytest.raises(ResendError) as caught:
        send(email(), "welcome/1")
    assert (caught.value.code, caught.value.error_type) == (500, "application_error")
    assert fake.sent == []

    # a different payload is fine: nothing was stored for the key
    send(email(subject="Changed"), "welcome/1")
    assert len(fake.sent) == 1


def test_committed_timeout_then_retry_replays_without_second_delivery(fake: FakeResend) -> None:
    fake.fail_next(commit=True, timeout=True)
    with pytest.raises(ResendError) as caught:
        send(email(), "welcome/1")
    assert (caught.value.code, caught.value.error_type) == (500, "HttpClientError")
    assert len(fake.sent) == 1
    assert [(r.status, r.name) for r in fake.requests] == [(0, "timeout")]

    retried = send(email(), "welcome/1")
    assert retried["id"] == fake.sent[0].id
    assert len(fake.sent) == 1


def test_committed_error_is_returned_after_accepting(fake: FakeResend) -> None:
    fake.fail_next(status=503, name="application_error", commit=True, html=True)
    with pytest.raises(ResendError) as caught:
        send(email(), "welcome/1")
    assert caught.value.code == 503
    assert len(fake.sent) == 1


# ---------------------------------------------------------------- rate limit and quota


def test_rate_limit_429_with_retry_after_and_refill(clock: FakeClock) -> None:
    fake = FakeResend(clock, rate_limit=2, burst=2)
    point_sdk_at(fake)

    first = send(email())
    assert first["http_headers"]["ratelimit-limit"] == "2"
    assert first["http_headers"]["ratelimit-remaining"] == "1"
    send(email())
    with pytest.raises(RateLimitError) as caught:
        send(email())
    error = caught.value
    assert (error.code, error.error_type) == (429, "rate_limit_exceeded")
    assert "You can only make 2 requests per second" in error.message
    assert error.headers["retry-after"] == "1"
    assert error.headers["ratelimit-remaining"] == "0"
    assert error.headers["ratelimit-limit"] == "2"
    assert "ratelimit-reset" in error.headers
    assert len(fake.sent) == 2

    clock.advance(1)
    send(email())
    assert len(fake.sent) == 3
    assert fake.count(429) == 1


def test_errors_carry_rate_limit_headers_too(clock: FakeClock) -> None:
    fake = FakeResend(clock, rate_limit=5, burst=5)
    point_sdk_at(fake)
    with pytest.raises(ValidationError) as caught:
        send(email(to="not-an-address"))
    assert caught.value.headers["ratelimit-limit"] == "5"
    assert caught.value.headers["ratelimit-remaining"] == "4"


def test_daily_quota(clock: FakeClock) -> None:
    fake = FakeResend(clock, rate_limit=None, daily_quota=2)
    point_sdk_at(fake)
    send(email())
    send(email())
    with pytest.raises(RateLimitError) as caught:
        send(email())
    assert (caught.value.code, caught.value.error_type) == (429, "daily_quota_exceeded")

    clock.set(datetime(2025, 12, 2, 0, 0, tzinfo=UTC))
    send(email())
    assert len(fake.sent) == 3


# ---------------------------------------------------------------- validation and auth


def test_invalid_address_is_422(fake: FakeResend) -> None:
    with pytest.raises(ValidationError) as caught:
        send(email(to=["lead@example.com", "not an address"]))
    assert caught.value.code == 422
    assert caught.value.error_type == "validation_error"
    assert caught.value.message.startswith("Invalid `to` field.")
    assert fake.sent == [] and fake.count(422) == 1


def test_too_many_recipients_is_422(fake: FakeResend) -> None:
    with pytest.raises(ValidationError):
        send(email(to=[f"lead{i}@example.com" for i in range(51)]))


@pytest.mark.parametrize("field", ["from", "to", "subject"])
def test_missing_required_field_is_422(fake: FakeResend, field: str) -> None:
    params = email()
    del params[field]
    with pytest.raises(MissingRequiredFieldsError) as caught:
        send(params)
    assert caught.value.code == 422
    assert f"`{field}`" in caught.value.message


def test_html_or_text_is_required(fake: FakeResend) -> None:
    with pytest.raises(MissingRequiredFieldsError):
        send(email(html=None, text=None))
    send(email(html=None))
    assert fake.sent[0].html is None and fake.sent[0].text == "Hello"


def test_unverified_domain_is_403(fake: FakeResend) -> None:
    with pytest.raises(ResendError) as caught:
        send(email(**{"from": "Acme <hi@unverified.org>"}))
    assert (caught.value.code, caught.value.error_type) == (403, "validation_error")
    assert "unverified.org domain is not verified" in caught.value.message
    assert fake.sent == []


def test_header_value_with_line_break_is_422(fake: FakeResend) -> None:
    with pytest.raises(ValidationError) as caught:
        send(email(headers={"X-Evil": "a\r\nBcc: victim@example.com"}))
    assert caught.value.code == 422 and "headers" in caught.value.message


def test_tag_value_must_be_plain(fake: FakeResend) -> None:
    with pytest.raises(ValidationError) as caught:
        send(email(tags=[{"name": "lead", "value": "lead@example.com"}]))
    assert caught.value.code == 422 and "tags" in caught.value.message


def test_wrong_api_key_is_403(fake: FakeResend) -> None:
    point_sdk_at(fake, api_key="re_wrong")
    with pytest.raises(InvalidApiKeyError) as caught:
        send(email())
    assert (caught.value.code, caught.value.error_type) == (403, "invalid_api_key")


def test_missing_api_key_is_401(fake: FakeResend) -> None:
    request = httpx.Request("POST", "http://fake-resend/emails", json=email())
    response = fake.handle(request)
    assert response.status_code == 401
    assert response.json()["name"] == "missing_api_key"
    point_sdk_at(fake, api_key="")
    with pytest.raises(MissingApiKeyError):
        send(email())


# ---------------------------------------------------------------- faults


def test_html_fault_gives_the_real_status(fake: FakeResend) -> None:
    fake.fail_next(status=502, html=True, retry_after=3)
    with pytest.raises(ResendError) as caught:
        send(email())
    assert (caught.value.code, caught.value.error_type) == (502, "application_error")
    assert caught.value.headers["retry-after"] == "3"
    assert fake.sent == []
    send(email())
    assert len(fake.sent) == 1


def test_fail_next_times(fake: FakeResend) -> None:
    fake.fail_next(status=500, name="internal_server_error", message="boom", times=2)
    for _ in range(2):
        with pytest.raises(ResendError) as caught:
            send(email())
        assert (caught.value.code, caught.value.message) == (500, "boom")
    send(email())
    assert fake.count(500) == 2 and len(fake.sent) == 1


def test_random_faults_are_seeded(clock: FakeClock) -> None:
    outcomes = []
    for _ in range(2):
        fake = FakeResend(clock, rate_limit=None, seed=3)
        fake.random_faults(0.5)
        point_sdk_at(fake)
        run = []
        for _ in range(20):
            try:
                send(email())
                run.append(200)
            except ResendError as error:
                run.append(int(error.code))
        outcomes.append(run)
    assert outcomes[0] == outcomes[1]
    assert {200, 500, 503} <= set(outcomes[0])


def test_take_down_and_bring_up(fake: FakeResend) -> None:
    fake.take_down()
    with pytest.raises(ResendError) as caught:
        send(email(), "welcome/1")
    assert caught.value.error_type == "HttpClientError"
    assert fake.count() == 0
    fake.bring_up()
    send(email(), "welcome/1")
    assert len(fake.sent) == 1


# ---------------------------------------------------------------- batch


def test_batch_send_and_replay(fake: FakeResend) -> None:
    batch = [email(to="a@example.com"), email(to="b@example.com")]
    first = resend.Batch.send(batch, {"idempotency_key": "batch/1"})
    assert [item["id"] for item in first["data"]] == [e.id for e in fake.sent]
    again = resend.Batch.send(batch, {"idempotency_key": "batch/1"})
    assert again["data"] == first["data"]
    assert len(fake.sent) == 2
    assert [e.idempotency_key for e in fake.sent] == ["batch/1", "batch/1"]


def test_batch_strict_and_permissive(fake: FakeResend) -> None:
    batch = [email(to="a@example.com"), email(to="broken")]
    with pytest.raises(ValidationError) as caught:
        resend.Batch.send(batch)
    assert "emails[1]" in caught.value.message
    assert fake.sent == []

    result = resend.Batch.send(batch, {"batch_validation": "permissive"})
    assert len(result["data"]) == 1 and result["errors"][0]["index"] == 1
    assert [e.to for e in fake.sent] == [("a@example.com",)]


# ---------------------------------------------------------------- served over loopback


def test_served_over_loopback_with_the_default_requests_client() -> None:
    fake = FakeResend(FakeClock(), rate_limit=None)
    with fake.serve() as url:
        resend.api_key = KEY
        resend.api_url = url
        resend.default_http_client = RequestsClient(timeout=5)

        first = send(email(), "welcome/1")
        assert send(email(), "welcome/1")["id"] == first["id"]

        fake.fail_next(commit=True, timeout=True)
        with pytest.raises(ResendError) as caught:
            send(email(to="other@example.com"), "welcome/2")
        assert caught.value.error_type == "HttpClientError"
        with pytest.raises(ValidationError):
            send(email(to="nope"))
    assert [e.to for e in fake.sent] == [("lead@example.com",), ("other@example.com",)]


def test_served_concurrent_requests_with_one_key_conflict() -> None:
    fake = FakeResend(FakeClock(), rate_limit=None)
    fake.latency = (0.3, 0.3)
    results: list[object] = []
    with fake.serve() as url:
        resend.api_key = KEY
        resend.api_url = url
        resend.default_http_client = RequestsClient(timeout=5)

        def attempt() -> None:
            try:
                results.append(send(email(), "welcome/1")["id"])
            except ResendError as error:
                results.append(error.error_type)

        first = threading.Thread(target=attempt)
        first.start()
        deadline = time.monotonic() + 5
        while not fake._active and time.monotonic() < deadline:  # the first one is being served
            time.sleep(0.005)
        attempt()
        first.join()
    assert sorted(map(str, results))[0] == "concurrent_idempotent_requests"
    assert len(fake.sent) == 1


def test_clock_is_used_for_timestamps(clock: FakeClock, fake: FakeResend) -> None:
    clock.advance(timedelta(minutes=5).total_seconds())
    send(email())
    assert fake.sent[0].at == datetime(2025, 12, 1, 10, 5, tzinfo=UTC)

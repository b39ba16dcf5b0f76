"""Every bad input gets a clear 4xx, never a 5xx, and never a 202 that is later dropped.

Each test here reproduces a finding of issue 10 §3 through the real app (TestClient on
create_app): the body, the Content-Type, the signature headers and the addresses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from notion_queue import cli
from notion_queue.clock import FakeClock
from notion_queue.intake.drainer import Drainer
from notion_queue.intake.handlers import build_handlers
from notion_queue.intake.journal import Journal
from notion_queue.intake.payloads import normalise_email
from notion_queue.mail.outbox import OutboxMailer
from notion_queue.models import Status, is_valid_email
from notion_queue.sequences import load_catalog
from notion_queue.settings import Settings
from notion_queue.store.base import QueueStore
from notion_queue.web.app import create_app
from notion_queue.web.signatures import verify_resend_signature
from tests.conftest import WorkerFactory, new_row

ROUTED = sorted(kind for kind, handler in build_handlers(load_catalog()).items() if handler.route)
WEBSITE = ["christmas-signup", "christmas-assessment", "calendly-noshow", "postcall-maybe"]
SIGNUP = {"email": "sarah@example.com", "first_name": "Sarah"}
JSON = {"Content-Type": "application/json"}
CALCOM_SECRET = "calcom-test-secret"
CALENDLY_KEY = "calendly-signing-key"
RESEND_SECRET = "whsec_" + base64.b64encode(b"resend-webhook-secret-32-bytes!!").decode()


def app_for(
    journal: Journal, clock: FakeClock, drainer: Drainer | None = None, **settings: Any
) -> Starlette:
    return create_app(Settings(**settings), journal=journal, drainer=drainer, clock=clock)


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    built = Journal(tmp_path / "door.sqlite3")
    yield built
    built.close()


@pytest.fixture
def door(journal: Journal, clock: FakeClock) -> TestClient:
    """The app with no secrets and no drainer: what the door answers, and what it journals."""
    return TestClient(app_for(journal, clock), raise_server_exceptions=False)


def post_raw(app: Starlette, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> Any:
    """Header bytes exactly as given (TestClient re-encodes non-ASCII header bytes as UTF-8)."""

    async def send() -> httpx2.Response:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.post(path, content=body, headers=headers)

    return anyio.run(send)


# -- the JSON body


def test_nesting_a_thousand_deep_is_400_and_writes_nothing(
    door: TestClient, journal: Journal
) -> None:
    deep = b'{"email":"sarah@example.com","note":' + b"[" * 1000 + b"]" * 1000 + b"}"
    also_deep = b'{"email":"sarah@example.com","note":' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}"

    for body in (deep, also_deep):
        response = door.post("/webhook/christmas-signup", content=body, headers=JSON)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "body is nested more than 32 levels deep"
    assert journal.backlog() == 0


def test_an_integer_of_thousands_of_digits_is_422_naming_the_field(
    door: TestClient, journal: Journal
) -> None:
    body = b'{"email":"sarah@example.com","lucky_number":' + b"7" * 4400 + b"}"

    response = door.post("/webhook/christmas-signup", content=body, headers=JSON)

    assert response.status_code == 422, response.text
    assert response.json()["error"] == (
        "lucky_number: an integer of 4400 digits is too large (at most 21 digits)"
    )
    assert response.json()["problems"] == [
        {
            "field": "lucky_number",
            "message": "an integer of 4400 digits is too large (at most 21 digits)",
        }
    ]
    assert journal.backlog() == 0


@pytest.mark.parametrize("number", ["1e999", "-1e999", "1e400", "NaN", "Infinity", "-Infinity"])
def test_a_number_that_is_not_finite_is_422_naming_the_field(
    door: TestClient, journal: Journal, number: str
) -> None:
    """Python's json reads these as inf or nan, which were stored as null."""
    body = f'{{"email":"sarah@example.com","assessment_data":{{"gps_score":{number}}}}}'

    response = door.post("/webhook/christmas-assessment", content=body.encode(), headers=JSON)

    assert response.status_code == 422, response.text
    assert response.json()["error"] == (
        f"assessment_data.gps_score: {number} is not a finite number"
    )
    assert journal.backlog() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (rb'{"email":"sarah@example.com","note":"half an emoji \ud83d"}', "note"),
        (rb'{"email":"sarah@example.com","note":"\udc00"}', "note"),
        (rb'{"email":"sarah@example.com","tags":["ok","\ud800x"]}', "tags.1"),
        (rb'{"email":"sarah@example.com","\ud800":"x"}', "\\ud800"),
        (rb'{"email":"sarah@example.com","meta":{"a\udfffb":1}}', "meta.a\\udfffb"),
    ],
)
def test_a_lone_surrogate_anywhere_is_422_naming_the_field(
    door: TestClient, journal: Journal, body: bytes, field: str
) -> None:
    """Was 202, then the journal could not store it and the event was dropped."""
    response = door.post("/webhook/christmas-signup", content=body, headers=JSON)

    assert response.status_code == 422, response.text
    assert response.json()["problems"][0]["field"] == field
    assert "lone UTF-16 surrogate" in response.json()["error"]
    assert journal.backlog() == 0


def test_an_emoji_sent_as_a_surrogate_pair_becomes_its_rows(
    store: QueueStore, intake: tuple[Journal, Drainer], clock: FakeClock
) -> None:
    journal, drainer = intake
    client = TestClient(app_for(journal, clock, drainer))
    body = rb'{"email":"sarah@example.com","first_name":"Sarah \ud83c\udf84"}'

    response = client.post("/webhook/christmas-signup", content=body, headers=JSON)

    assert response.status_code == 202
    assert drainer.drain_once() == 1
    assert journal.status_of(response.json()["event_id"]) == "done"
    rows = store.rows_for_email("sarah@example.com")
    assert len(rows) == 5 and rows[0].first_name == "Sarah \U0001f384"


def test_a_body_that_is_not_utf8_is_400(door: TestClient, journal: Journal) -> None:
    response = door.post(
        "/webhook/christmas-signup", content=b'{"email":"\xff@example.com"}', headers=JSON
    )
    assert response.status_code == 400
    assert response.json()["error"] == "body is not UTF-8"
    assert journal.backlog() == 0


# -- the Content-Type


@pytest.mark.parametrize("kind", ROUTED)
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonp",
        "json",
        "",
    ],
)
def test_a_content_type_that_is_not_json_is_415(
    door: TestClient, journal: Journal, kind: str, content_type: str
) -> None:
    response = door.post(
        f"/webhook/{kind}",
        content=json.dumps(SIGNUP).encode(),
        headers={"Content-Type": content_type},
    )

    assert response.status_code == 415, response.text
    assert response.json()["error"].startswith("Content-Type must be application/json")
    assert journal.backlog() == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/json"},
        {"Content-Type": "application/json; charset=utf-8"},
        {"Content-Type": "Application/JSON ; charset=UTF-8"},
        {"Content-Type": "application/vnd.api+json"},
        {},  # no Content-Type at all: taken as JSON, as FastAPI (the seed server) did
    ],
)
def test_json_content_types_and_a_missing_one_are_accepted(
    door: TestClient, headers: dict[str, str]
) -> None:
    response = door.post(
        "/webhook/christmas-signup", content=json.dumps(SIGNUP).encode(), headers=headers
    )
    assert response.status_code == 202, response.text


# -- signature headers


@pytest.fixture
def signed_door(journal: Journal, clock: FakeClock) -> Starlette:
    return app_for(
        journal,
        clock,
        webhook_secret="website-secret",
        calcom_webhook_secret=CALCOM_SECRET,
        calendly_webhook_signing_key=CALENDLY_KEY,
        resend_webhook_secret=RESEND_SECRET,
    )


CALENDLY_BODY = json.dumps({"event": "invitee.created", "payload": {}}).encode()


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"t=" + b"1" * 400 + b",v1=" + b"a" * 64, "t=<unix time>"),
        (b"t=\xb2,v1=ab", "t=<unix time>"),
        (b"t=\xb2\xb3,v1=" + b"a" * 64, "t=<unix time>"),
        (b"t=1764583200,v1=\xff\xfe", "v1=<64 hex digits>"),
        (b"t=1764583200", "v1=<64 hex digits>"),
        (b"\xb2", "t=<unix time>"),
        (b"t=1764583200,v1=" + b"a" * 64, "does not match the body"),
    ],
)
def test_a_malformed_calendly_signature_is_401_before_anything_else(
    signed_door: Starlette, journal: Journal, header: bytes, reason: str
) -> None:
    """`t=` with 400 digits, or a latin-1 digit such as \\xb2, was a 500."""
    response = post_raw(
        signed_door,
        "/webhook/calendly",
        CALENDLY_BODY,
        [(b"content-type", b"application/json"), (b"calendly-webhook-signature", header)],
    )

    assert response.status_code == 401, response.text
    assert response.json()["error"].startswith("Calendly-Webhook-Signature")
    assert reason in response.json()["error"]
    assert journal.backlog() == 0


@pytest.mark.parametrize(
    ("path", "header", "value", "reason"),
    [
        (
            "/webhook/christmas-signup",
            "x-webhook-signature",
            b"sha256=\xb2\xff",
            "sha256=<64 hex digits>",
        ),
        (
            "/webhook/christmas-signup",
            "x-webhook-signature",
            b"sha256=" + b"0" * 64,
            "does not match",
        ),
        ("/webhook/calcom-booking", "x-cal-signature-256", b"\xb2" * 64, "<64 hex digits>"),
        ("/webhook/calcom-booking", "x-cal-signature-256", b"no-secret-provided", "no secret"),
        ("/webhook/calendly", "calendly-webhook-signature", b"t=\xc2\xb2,v1=ab", "t=<unix time>"),
        ("/webhook/resend", "svix-signature", b"v1,\xb2\xff", "no matching signature"),
        ("/webhook/resend", "svix-signature", b"\xff", "v1,<base64>"),
    ],
)
def test_non_ascii_signature_headers_are_401_with_a_reason(
    signed_door: Starlette, journal: Journal, path: str, header: str, value: bytes, reason: str
) -> None:
    now = str(int(time.time())).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"svix-id", b"msg_1"),
        (b"svix-timestamp", now),
        (header.encode(), value),
    ]
    response = post_raw(signed_door, path, json.dumps(SIGNUP).encode(), headers)

    assert response.status_code == 401, response.text
    assert reason in response.json()["error"]
    assert journal.backlog() == 0


def test_non_ascii_signature_headers_through_the_test_client_are_401(
    signed_door: Starlette, journal: Journal
) -> None:
    client = TestClient(signed_door, raise_server_exceptions=False)
    body = json.dumps(SIGNUP).encode()
    latin1 = "t=\xb2,v1=\xe9".encode("latin-1")
    attempts = [
        ("/webhook/christmas-signup", {"X-Webhook-Signature": latin1}),
        ("/webhook/calcom-booking", {"X-Cal-Signature-256": latin1}),
        ("/webhook/calendly", {"Calendly-Webhook-Signature": latin1}),
        (
            "/webhook/resend",
            {"svix-id": latin1, "svix-timestamp": b"\xb2\xb3", "svix-signature": latin1},
        ),
    ]
    for path, headers in attempts:
        response = client.post(path, content=body, headers={**JSON, **headers})  # type: ignore[dict-item]
        assert response.status_code == 401, (path, response.text)
    assert journal.backlog() == 0


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"svix-timestamp": "1" * 400}, "svix-timestamp must be a unix time"),
        ({"svix-timestamp": "\xb2"}, "svix-timestamp must be a unix time"),
        ({"svix-timestamp": "-5"}, "svix-timestamp must be a unix time"),
        ({"svix-id": ""}, "missing svix-id"),
        ({"svix-id": "msg 1"}, "svix-id"),
        ({"svix-signature": ""}, "missing svix-signature"),
        ({"svix-signature": "v1a,abc"}, "no matching signature"),
    ],
)
def test_malformed_svix_headers_are_401_with_a_reason(
    signed_door: Starlette, journal: Journal, headers: dict[str, str], reason: str
) -> None:
    base = {
        "content-type": "application/json",
        "svix-id": "msg_1",
        "svix-timestamp": str(int(time.time())),
        "svix-signature": "v1,AAAA",
    }
    raw = [(k.encode(), v.encode("latin-1")) for k, v in {**base, **headers}.items()]
    response = post_raw(signed_door, "/webhook/resend", b'{"type":"email.sent","data":{}}', raw)

    assert response.status_code == 401, response.text
    assert reason in response.json()["error"]
    assert journal.backlog() == 0


def test_svix_signature_matches_the_official_test_vector() -> None:
    headers = {
        "svix-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "svix-timestamp": "1614265330",
        "svix-signature": "v1,bad v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'

    assert verify_resend_signature(secret, body, headers, now=1614265330 + 299) is None
    stale = verify_resend_signature(secret, body, headers, now=1614265330 + 301)
    assert stale is not None and "more than 300 s" in stale
    altered = verify_resend_signature(secret, body + b" ", headers, now=1614265330)
    assert altered == "svix-signature: no matching signature (check RESEND_WEBHOOK_SECRET)"


def test_a_correctly_signed_resend_body_nested_too_deep_is_400_not_401(
    signed_door: Starlette, journal: Journal
) -> None:
    body = b'{"type":"email.sent","data":' + b"[" * 5000 + b"]" * 5000 + b"}"
    ts = str(int(time.time()))
    key = base64.b64decode(RESEND_SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"msg_deep.{ts}.".encode() + body, hashlib.sha256).digest()
    headers = {
        **JSON,
        "svix-id": "msg_deep",
        "svix-timestamp": ts,
        "svix-signature": f"v1,{base64.b64encode(mac).decode()}",
    }

    response = TestClient(signed_door, raise_server_exceptions=False).post(
        "/webhook/resend", content=body, headers=headers
    )

    assert response.status_code == 400, response.text
    assert journal.backlog() == 0


# -- addresses

HOSTILE_ADDRESSES = [
    ("sa\x00rah@example.com", "a control character (U+0000)"),
    ("sa\x7frah@example.com", "a control character (U+007F)"),
    ("sa\x1brah@example.com", "a control character (U+001B)"),
    ("sarah@exam\x85ple.com", "a control character (U+0085)"),
    ("sa\u202erah@example.com", "an invisible formatting character (U+202E)"),
    ("sarah@example\u202e.com", "an invisible formatting character (U+202E)"),
    ("sa\u2066rah@example.com", "an invisible formatting character (U+2066)"),
    ("sa\u200brah@example.com", "an invisible formatting character (U+200B)"),
    ("sarah@exa\u200bmple.com", "an invisible formatting character (U+200B)"),
    ("sa\u200crah@example.com", "an invisible formatting character (U+200C)"),
    ("sa\u200drah@example.com", "an invisible formatting character (U+200D)"),
    ("sa\u2060rah@example.com", "an invisible formatting character (U+2060)"),
    ("\ufeffsarah@example.com", "an invisible formatting character (U+FEFF)"),
    ("sarah@ex\u00adample.com", "an invisible formatting character (U+00AD)"),
    ("sa\u00a0rah@example.com", "a space (U+00A0)"),
    ("sarah@example.com\u2028", "a space (U+2028)"),
    ("=?utf-8?q?a?=@example.com", "an RFC 2047 encoded word"),
    ("=?UTF-8?B?YQ==?=@example.com", "an RFC 2047 encoded word"),
    ("sarah=?iso-8859-1?q?=e9?=@example.com", "an RFC 2047 encoded word"),
    ("sérah@example.com", "the part before @ must be ASCII"),
    ("ünï@exämple.com", "the part before @ must be ASCII"),
    ("sarah@bü_cher.de", "not a valid internationalised domain name"),
]


@pytest.mark.parametrize(("address", "reason"), HOSTILE_ADDRESSES)
def test_a_hostile_address_is_422_naming_the_field(
    door: TestClient, journal: Journal, address: str, reason: str
) -> None:
    response = door.post("/webhook/christmas-signup", json={**SIGNUP, "email": address})

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error.startswith(f"email: {address!r} is not a valid email address: "), error
    assert reason in error
    assert journal.backlog() == 0


@pytest.mark.parametrize(
    "address",
    [
        "sarah..x@example.com",
        ".sarah@example.com",
        "sarah.@example.com",
        "sarah@example..com",
        "sarah@.example.com",
        "sarah@-example.com",
        "sarah@example-.com",
        "sarah@" + "a" * 64 + ".com",
        "s" * 65 + "@example.com",
        "sarah@example.c",
        "sarah@example.123",
    ],
)
def test_a_malformed_address_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="is not a valid email address"):
        normalise_email(address)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("user@bücher.de", "user@xn--bcher-kva.de"),
        (" User@Bücher.DE ", "user@xn--bcher-kva.de"),
        ("user@faß.de", "user@xn--fa-hia.de"),
        ("user@xn--bcher-kva.de", "user@xn--bcher-kva.de"),
        ("o.k+tag@sub.example.co.uk", "o.k+tag@sub.example.co.uk"),
    ],
)
def test_an_internationalised_domain_is_stored_in_its_ascii_form(given: str, stored: str) -> None:
    assert normalise_email(given) == stored
    assert is_valid_email(stored)


def test_a_signup_with_an_internationalised_domain_becomes_rows_to_its_ascii_form(
    store: QueueStore, intake: tuple[Journal, Drainer], clock: FakeClock
) -> None:
    journal, drainer = intake
    client = TestClient(app_for(journal, clock, drainer))

    response = client.post("/webhook/christmas-signup", json={**SIGNUP, "email": "user@bücher.de"})

    assert response.status_code == 202
    drainer.drain_once()
    assert journal.status_of(response.json()["event_id"]) == "done"
    assert len(store.rows_for_email("user@xn--bcher-kva.de")) == 5


def test_an_address_typed_by_hand_follows_the_same_rule(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    """A marketer's row is sent as typed: a hostile or non-ASCII address fails it, with why."""
    hidden = store.add_row(new_row(email="sa\u200brah@example.com"))
    unicode_domain = store.add_row(new_row(email="user@bücher.de"))
    good = store.add_row(new_row(email="Good@Example.com"))

    summary = make_worker(store, outbox).run_once()

    assert summary["failed"] == 2 and summary["sent"] == 1
    assert "U+200B" in store.get_row(hidden.id).error_message
    assert "user@xn--bcher-kva.de" in store.get_row(unicode_domain.id).error_message
    assert store.get_row(good.id).status is Status.SENT


def test_hostile_addresses_are_refused_at_every_sink(journal: Journal, clock: FakeClock) -> None:
    """Cal.com attendees, Calendly invitees and Resend's `to` follow the website's rule."""
    client = TestClient(app_for(journal, clock), raise_server_exceptions=False)
    hostile = "sa\u202erah@example.com"
    calcom = {
        "triggerEvent": "BOOKING_CREATED",
        "payload": {
            "uid": "b1",
            "startTime": "2025-12-10T14:30:00Z",
            "attendees": [{"email": hostile, "name": "Sarah"}],
        },
    }
    calendly = {
        "event": "invitee.created",
        "payload": {
            "uri": "https://api.calendly.com/scheduled_events/EV/invitees/INV",
            "email": hostile,
            "scheduled_event": {"start_time": "2025-12-10T14:30:00Z"},
        },
    }
    resend = {"type": "email.complained", "data": {"email_id": "em_1", "to": [hostile]}}

    answers = {
        "payload.attendees.0.email": client.post("/webhook/calcom-booking", json=calcom),
        "payload.email": client.post("/webhook/calendly", json=calendly),
        "data.to": client.post("/webhook/resend", json=resend),
    }

    for field, response in answers.items():
        assert response.status_code == 422, (field, response.text)
        assert response.json()["error"].startswith(f"{field}: "), response.text
        assert "U+202E" in response.json()["error"]
    assert journal.backlog() == 0


def test_cli_refuses_a_hostile_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SQLITE_PATH", str(tmp_path / "q.sqlite3"))
    monkeypatch.setenv("STATE_DIR", str(tmp_path / "state"))

    code = cli.main(["enqueue", "lead_nurture", "--email", "=?utf-8?q?a?=@example.com"])

    assert code == 1
    assert (
        "is not a valid email address: it contains an RFC 2047 encoded word"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "address",
    [
        "Sarah@Example.COM",
        "o.k+tag@sub.example.co.uk",
        "user@xn--bcher-kva.de",
        "a@EXAMPLE.XN--VERMGENSBERATER-CTB",
        "x_y-z@mail-1.example.io",
    ],
)
def test_an_ascii_address_is_accepted_as_typed(address: str) -> None:
    assert is_valid_email(address)


def test_calcom_booker_named_in_responses_is_found_by_its_ascii_form(
    journal: Journal, clock: FakeClock
) -> None:
    from notion_queue.intake.payloads import CalcomBooking

    booking = CalcomBooking.model_validate(
        {
            "attendees": [{"email": "host@example.com"}, {"email": "Guest@Bücher.de"}],
            "responses": {"email": {"value": "guest@bücher.de"}},
        }
    )
    assert booking.booker().email == "guest@xn--bcher-kva.de"

    client = TestClient(app_for(journal, clock), raise_server_exceptions=False)
    response = client.post(
        "/webhook/calcom-booking",
        json={
            "triggerEvent": "BOOKING_CREATED",
            "payload": {
                "uid": "b1",
                "startTime": "2025-12-10T14:30:00Z",
                "attendees": [],
                "responses": {"email": {"value": "=?utf-8?q?a?=@example.com"}},
            },
        },
    )
    assert response.status_code == 422
    assert response.json()["error"].startswith("payload.responses.email.value: ")
    assert "RFC 2047" in response.json()["error"]
    assert journal.backlog() == 0

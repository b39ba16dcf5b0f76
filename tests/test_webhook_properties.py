"""Property tests of every webhook: no input yields a 5xx or a partial write.

For each routed endpoint (and /unsubscribe) hypothesis posts arbitrary bytes, arbitrary JSON and
JSON shaped like the real payloads with hostile values. Whatever comes in:
- the answer is never a 5xx;
- a 4xx journals nothing (the backlog does not grow);
- a 202 "accepted" journals an event that the drainer applies (on SQLite) without rejecting
  it, and every sequence it starts has its rows (an event answered 202 is never lost).
Hostile shapes are mixed in: deep nesting, huge integers, non-finite numbers, lone surrogates,
hostile addresses, wrong Content-Types and malformed signature headers.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from notion_queue.clock import FakeClock
from notion_queue.intake.drainer import Drainer
from notion_queue.intake.handlers import build_handlers
from notion_queue.intake.journal import Journal, JournalEntry
from notion_queue.intake.payloads import normalise_email
from notion_queue.intake.processor import IntakeProcessor
from notion_queue.sequences import load_catalog
from notion_queue.settings import Settings
from notion_queue.store.sqlite import SqliteStore
from notion_queue.templates import load_packaged_templates
from notion_queue.unsubscribe import UnsubscribeTokens
from notion_queue.web.app import create_app
from tests.conftest import T0

ROUTED = sorted(kind for kind, handler in build_handlers(load_catalog()).items() if handler.route)
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- values: valid ones, near misses and hostile ones

emails = st.one_of(
    st.sampled_from(
        [
            "sarah@example.com",
            " Sarah@Example.COM ",
            "x",
            "",
            "a@b",
            "a@b.c",
            "a\r\nb@example.com",
            "a@example.com\nBcc: b@example.com",
            "<a@example.com>",
            "a" * 300 + "@example.com",
            "ünï@exämple.com",
            "user@bücher.de",
            "sa\x00rah@example.com",
            "sa\x7frah@example.com",
            "sa\u202erah@example.com",
            "sa\u200brah@example.com",
            "sarah@exa\u200dmple.com",
            "\ufeffsarah@example.com",
            "=?utf-8?q?a?=@example.com",
            "sarah@example.com\u2028",
            "sa\ud800rah@example.com",
        ]
    ),
    st.emails().map(str),
    st.text(max_size=30),
)
times = st.one_of(
    st.sampled_from(
        [
            "2025-12-05T15:00:00Z",
            "2025-12-05T15:00:00.000Z",
            "2025-12-05T15:00:00+14:00",
            "2025-12-05T15:00:00",
            "2025-12-05",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-12:00",
            "1970-01-01T00:00:00Z",
            "not a time",
            "",
        ]
    ),
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
    ).map(lambda d: d.isoformat()),
    st.integers(),
    st.none(),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    emails,
    times,
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def maybe(draw: st.DrawFn, value: st.SearchStrategy[Any]) -> Any:
    """Most of the time the expected kind of value; sometimes anything at all."""
    return draw(st.one_of(value, value, value, json_values))


@st.composite
def website_body(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"email": maybe(draw, emails)}
    for name in ("first_name", "last_name", "name", "business_name"):
        if draw(st.booleans()):
            body[name] = maybe(draw, st.text(max_size=40))
    for name in ("email_1_sent_at", "meeting_time", "meeting_start"):
        if draw(st.booleans()):
            body[name] = maybe(draw, times)
    body.update(draw(st.dictionaries(st.text(max_size=12), json_values, max_size=3)))
    return body


@st.composite
def calcom_body(draw: st.DrawFn) -> dict[str, Any]:
    person = st.fixed_dictionaries(
        {"email": emails}, optional={"name": st.text(max_size=20), "timeZone": st.text(max_size=20)}
    )
    payload: dict[str, Any] = {
        "uid": maybe(draw, st.text(max_size=20)),
        "startTime": maybe(draw, times),
        "attendees": maybe(draw, st.lists(person, max_size=3)),
    }
    for name in ("endTime",):
        if draw(st.booleans()):
            payload[name] = maybe(draw, times)
    if draw(st.booleans()):
        payload["rescheduleUid"] = maybe(draw, st.text(max_size=20))
    if draw(st.booleans()):
        payload["requestReschedule"] = maybe(draw, st.booleans())
    if draw(st.booleans()):
        payload["responses"] = maybe(
            draw, st.fixed_dictionaries({"email": st.fixed_dictionaries({"value": emails})})
        )
    trigger = st.sampled_from(
        ["BOOKING_CREATED", "BOOKING_RESCHEDULED", "BOOKING_CANCELLED", "MEETING_ENDED", ""]
    )
    return {
        "triggerEvent": maybe(draw, trigger),
        "createdAt": maybe(draw, times),
        "payload": maybe(draw, st.just(payload)),
    }


@st.composite
def calendly_body(draw: st.DrawFn) -> dict[str, Any]:
    invitee: dict[str, Any] = {
        "uri": maybe(draw, st.text(max_size=30)),
        "email": maybe(draw, emails),
        "scheduled_event": maybe(
            draw, st.fixed_dictionaries({"start_time": times}, optional={"uri": st.text()})
        ),
    }
    for name in ("name", "first_name", "old_invitee", "new_invitee"):
        if draw(st.booleans()):
            invitee[name] = maybe(draw, st.text(max_size=30))
    if draw(st.booleans()):
        invitee["rescheduled"] = maybe(draw, st.booleans())
    event = st.sampled_from(
        [
            "invitee.created",
            "invitee.canceled",
            "invitee_no_show.created",
            "invitee_no_show.deleted",
        ]
    )
    return {
        "event": maybe(draw, event),
        "created_at": maybe(draw, times),
        "payload": maybe(draw, st.just(invitee)),
    }


@st.composite
def resend_body(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {
        "email_id": maybe(draw, st.text(max_size=30)),
        "to": maybe(draw, st.one_of(emails, st.lists(emails, max_size=3))),
    }
    if draw(st.booleans()):
        data["bounce"] = maybe(
            draw, st.fixed_dictionaries({"type": st.sampled_from(["Permanent", "Transient"])})
        )
    kinds = st.sampled_from(
        [
            "email.sent",
            "email.delivered",
            "email.delivery_delayed",
            "email.opened",
            "email.clicked",
            "email.bounced",
            "email.complained",
            "email.failed",
            "email.suppressed",
            "contact.created",
        ]
    )
    return {
        "type": maybe(draw, kinds),
        "created_at": maybe(draw, times),
        "data": maybe(draw, st.just(data)),
    }


SHAPED = {"calcom-booking": calcom_body(), "calendly": calendly_body(), "resend": resend_body()}


def shaped(kind: str) -> st.SearchStrategy[Any]:
    return SHAPED.get(kind, website_body())


class Harness:
    """One app on a fresh journal; every answer is checked against the journal and SQLite."""

    def __init__(self, tmp: Path) -> None:
        self.clock = FakeClock(T0)
        self.journal = Journal(tmp / "intake.sqlite3")
        self.store = SqliteStore(tmp / "queue.sqlite3")
        self.tokens = UnsubscribeTokens(b"property-test-unsubscribe-secret")
        self.processor = IntakeProcessor(
            self.store, load_catalog(known_templates=load_packaged_templates()), self.clock
        )
        self.drainer = Drainer(self.journal, self.processor, self.clock)
        app = create_app(
            Settings(),
            journal=self.journal,
            drainer=None,
            clock=self.clock,
            unsubscribe=self.tokens,
        )
        self.client = TestClient(app, raise_server_exceptions=False)

    def close(self) -> None:
        self.client.close()
        self.journal.close()
        self.store.close()

    def entry(self, event_id: str) -> JournalEntry:
        far = self.clock.now() + timedelta(days=3650)
        for entry in self.journal.pending(far, limit=1_000_000):
            if entry.id == event_id:
                return entry
        raise AssertionError(f"{event_id} answered 202 but is not pending in the journal")

    def post(self, path: str, content: bytes, **headers: str | bytes) -> None:
        before = self.journal.backlog()
        response = self.client.post(path, content=content, headers=headers)
        after = self.journal.backlog()
        shown = content[:300]
        assert response.status_code < 500, f"{path} {shown!r} → {response.status_code}"
        if response.status_code >= 400:
            assert after == before, f"{path} {shown!r} → {response.status_code} but journaled"
            return
        if path.startswith("/unsubscribe"):
            assert response.status_code == 200, f"{path} → {response.status_code}"
            if after > before:
                for entry in self.journal.pending(self.clock.now() + timedelta(days=1), 10**6):
                    self.drain(entry)
            return
        assert response.status_code == 202, f"{path} {shown!r} → {response.status_code}"
        answer = response.json()
        if answer["status"] != "accepted":
            assert after == before, f"{path} {shown!r} ignored but journaled"
            return
        if answer["duplicate"]:
            assert after == before
            return
        assert after == before + 1
        self.drain(self.entry(answer["event_id"]))

    def drain(self, entry: JournalEntry) -> None:
        """What the server's drainer does with it must finish it, with every started sequence's
        rows in the store."""
        plan = self.processor.plan(entry)
        self.drainer.drain_once()
        status = self.journal.status_of(entry.id)
        if status != "done":
            far = self.clock.now() + timedelta(days=3650)
            errors = [e.last_error for e in self.journal.pending(far, 10**6) if e.id == entry.id]
            raise AssertionError(f"202 then {status}: {errors} for {entry.payload!r:.300}")
        for start in plan.starts:
            assert self.store.rows_for_email(plan.email, sequence=start.sequence), start


@pytest.fixture
def harness() -> Iterator[Harness]:
    with tempfile.TemporaryDirectory() as tmp:
        built = Harness(Path(tmp))
        yield built
        built.close()


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False).encode()


@pytest.mark.parametrize("kind", ROUTED)
@EXAMPLES
@given(data=st.data())
def test_shaped_payloads(harness: Harness, kind: str, data: st.DataObject) -> None:
    body = data.draw(shaped(kind), label="body")
    harness.post(f"/webhook/{kind}", _json_bytes(body), **{"content-type": "application/json"})


@pytest.mark.parametrize("kind", ROUTED)
@EXAMPLES
@given(body=st.one_of(json_values, st.binary(max_size=200)))
def test_arbitrary_bodies(harness: Harness, kind: str, body: Any) -> None:
    content = body if isinstance(body, bytes) else _json_bytes(body)
    harness.post(f"/webhook/{kind}", content, **{"content-type": "application/json"})


def _valid(address: str) -> bool:
    try:
        normalise_email(address)
    except ValueError:
        return False
    return True


# The server mints tokens only for the addresses of rows it sends, which are valid addresses.
valid_emails = emails.filter(_valid)


@EXAMPLES
@given(
    email=valid_emails,
    token=st.one_of(st.none(), st.text(max_size=60)),
    body=st.binary(max_size=100),
)
def test_unsubscribe(harness: Harness, email: str, token: str | None, body: bytes) -> None:
    if token is None:  # a real link for an arbitrary address
        token = harness.tokens.token(email)
    response = harness.client.get("/unsubscribe", params={"token": token})
    assert response.status_code < 500, (token, response.status_code)
    harness.post(
        f"/unsubscribe?token={quote(token, safe='')}",
        body,
        **{"content-type": "application/x-www-form-urlencoded"},
    )


# -- hostile shapes: raw JSON tokens json.dumps cannot write, deep nesting, lone surrogates

RAW_TOKENS = st.one_of(
    st.sampled_from(["1e999", "-1e999", "1e400", "NaN", "Infinity", "-Infinity", "1" * 22]),
    st.integers(min_value=4290, max_value=4400).map(lambda n: "9" * n),
    st.integers(min_value=1, max_value=1000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=40).map(lambda n: '{"a":' * n + "1" + "}" * n),
)
lone_surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
hostile_text = st.builds(
    lambda head, surrogate, tail: head + surrogate + tail,
    st.text(max_size=8),
    lone_surrogates,
    st.text(max_size=8),
)
PLACEHOLDER = "\x00raw-token\x00"


@st.composite
def hostile_body(draw: st.DrawFn, kind: str) -> bytes:
    """A payload shaped for `kind` with one value (or key) somewhere replaced by a hostile one."""
    body = draw(shaped(kind))
    containers: list[Any] = []
    stack: list[Any] = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, dict | list):
            containers.append(value)
            stack.extend(value.values() if isinstance(value, dict) else value)
    target = draw(st.sampled_from(containers))
    raw = draw(st.one_of(RAW_TOKENS, st.none()))
    hostile: Any = PLACEHOLDER if raw is not None else draw(hostile_text)
    if isinstance(target, list) and target:
        target[draw(st.integers(0, len(target) - 1))] = hostile
    elif isinstance(target, list):
        target.append(hostile)
    elif draw(st.booleans()) and raw is None:
        target[draw(hostile_text)] = "x"  # a hostile key
    else:
        keys = sorted(str(k) for k in target) or ["extra"]
        target[draw(st.sampled_from([*keys, "extra"]))] = hostile
    text = json.dumps(body, allow_nan=False)
    if raw is not None:
        text = text.replace(json.dumps(PLACEHOLDER), raw, 1)
    return text.encode()


content_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/vnd.api+json",
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
        ]
    ),
    st.none(),  # no Content-Type header at all
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=30),
)
HOSTILE = settings(EXAMPLES, max_examples=25)


@pytest.mark.parametrize("kind", ROUTED)
@HOSTILE
@given(data=st.data())
def test_hostile_bodies_and_content_types(harness: Harness, kind: str, data: st.DataObject) -> None:
    body = data.draw(hostile_body(kind), label="body")
    content_type = data.draw(content_types, label="content_type")
    headers = {} if content_type is None else {"content-type": content_type.encode("latin-1")}
    harness.post(f"/webhook/{kind}", body, **headers)


SIGNATURE_HEADERS = {
    "christmas-signup": ["x-webhook-signature"],
    "calcom-booking": ["x-cal-signature-256"],
    "calendly": ["calendly-webhook-signature"],
    "resend": ["svix-id", "svix-timestamp", "svix-signature"],
}
header_values = st.one_of(
    st.binary(max_size=80).filter(lambda b: b"\r" not in b and b"\n" not in b and b"\0" not in b),
    st.builds(
        lambda t, v: f"t={t},v1={v}".encode("latin-1"),
        st.one_of(st.integers(), st.text(st.characters(max_codepoint=255), max_size=20)),
        st.text(st.characters(max_codepoint=255), max_size=70),
    ),
    st.sampled_from([b"t=\xb2,v1=ab", b"t=" + b"1" * 400, b"v1,\xff", b"no-secret-provided"]),
)


@pytest.mark.parametrize("kind", sorted(SIGNATURE_HEADERS))
@HOSTILE
@given(data=st.data())
def test_malformed_signature_headers_are_401(kind: str, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "intake.sqlite3")
        app = create_app(
            Settings(
                webhook_secret="website-secret",  # type: ignore[arg-type]
                calcom_webhook_secret="calcom-secret",  # type: ignore[arg-type]
                calendly_webhook_signing_key="calendly-key",  # type: ignore[arg-type]
                resend_webhook_secret="whsec_" + "A" * 44,  # type: ignore[arg-type]
            ),
            journal=journal,
            drainer=None,
            clock=FakeClock(T0),
        )
        headers = [(b"content-type", b"application/json")] + [
            (name.encode(), data.draw(header_values, label=name))
            for name in SIGNATURE_HEADERS[kind]
        ]

        async def send() -> int:
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.post(f"/webhook/{kind}", content=b"{}", headers=headers)
            return response.status_code

        try:
            assert anyio.run(send) == 401
        finally:
            journal.close()

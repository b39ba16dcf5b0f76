"""Property tests of every webhook: no input yields a 5xx or a partial write.

For each routed endpoint (and /unsubscribe) hypothesis posts arbitrary bytes, arbitrary JSON and
JSON shaped like the real payloads with hostile values. Whatever comes in:
- the answer is never a 5xx;
- a 4xx journals nothing (the backlog does not grow);
- a 202 "accepted" journals an event that can be planned and applied (on SQLite), so the
  drainer will not reject it later (which would lose an event answered 202).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from notion_queue.app import create_app
from notion_queue.clock import FakeClock
from notion_queue.intake.handlers import HANDLERS
from notion_queue.intake.journal import Journal, JournalEntry
from notion_queue.intake.payloads import normalise_email
from notion_queue.intake.processor import IntakeProcessor
from notion_queue.sequences import load_catalog
from notion_queue.settings import Settings
from notion_queue.store.sqlite import SqliteStore
from notion_queue.templates import load_packaged_templates
from notion_queue.unsubscribe import UnsubscribeTokens
from tests.conftest import T0

ROUTED = sorted(kind for kind, handler in HANDLERS.items() if handler.route)
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

    def post(self, path: str, content: bytes, **headers: str) -> None:
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
                    self.processor.plan(entry)
                    self.processor.apply(entry)
                    self.journal.mark_done(entry.id)
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
        entry = self.entry(answer["event_id"])
        # What the drainer does with it: plan (pure) and apply (on SQLite) must not fail.
        self.processor.plan(entry)
        self.processor.apply(entry)
        self.journal.mark_done(entry.id)


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

"""What an event asks of the queue (a Plan), and how a sequence start becomes rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from notion_queue.daily_cap import DailyCap
from notion_queue.models import ContactData, Delivery, NewRow, Status, utc_text
from notion_queue.sequences import Catalog, Sequence
from notion_queue.timezones import UTC_ZONE, ZONE_VARIABLE


@dataclass(frozen=True)
class StartSequence:
    sequence: str
    anchor: datetime
    first_name: str = ""
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CancelSequences:
    """Exit rule: the open rows of these sequences end (or, with hold, become `waiting`)."""

    sequences: tuple[str, ...]
    reason: str
    hold: bool = False


HELD_NOTE = "held until the guest rebooks: "
# Before the `waiting` status, a system hold was `paused` with an Error Message beginning
# "waiting: ". Only the reschedule rule still reads such rows as system holds, so a rebooking
# pending across the upgrade is requeued once; everything else treats them as paused.
LEGACY_WAITING_NOTE = "waiting: "
ALL_SEQUENCES = "*"


@dataclass(frozen=True)
class MoveSequence:
    """A rescheduled meeting: the sequence's open rows follow the new anchor."""

    sequence: str
    new_anchor: datetime
    reason: str


@dataclass(frozen=True)
class Plan:
    email: str
    contact: ContactData | None  # None: the event says nothing about the person
    starts: tuple[StartSequence, ...] = ()
    cancels: tuple[CancelSequences, ...] = ()
    moves: tuple[MoveSequence, ...] = ()
    deliveries: tuple[tuple[str, Delivery], ...] = ()  # (Resend Email ID, delivery state)
    ignored_fields: tuple[str, ...] = ()  # sent but not declared in the catalog: dropped
    dropped_fields: tuple[str, ...] = ()  # declared but left out, and why (never the value)


def event_variables(variables: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    """What a row stores: never a campaign variable (those are the business's, not the event's)."""
    return {
        k: v for k, v in variables.items() if k not in catalog.variables and v not in (None, "")
    }


def dedupe_key(event_key: str, sequence: str, step_number: int) -> str:
    return f"{event_key}/{sequence}/{step_number}"


def expand(
    start: StartSequence,
    *,
    email: str,
    catalog: Catalog,
    event_key: str,
    now: datetime,
    testing_mode: bool,
    contact_id: str | None = None,
    zone: ZoneInfo = UTC_ZONE,
    cap: DailyCap | None = None,
) -> list[NewRow]:
    """One row per step, at its real Scheduled Time: inside the sequence's send window (in the
    recipient's `zone`) and on a day with room under the daily cap. A step the website already
    sent is recorded as sent; a step before a meeting whose moment has passed, or whose window
    opens only after it, is recorded as skipped rather than sent late. A review sequence's rows
    wait in `review`."""
    sequence = catalog[start.sequence]
    expires_at = start.anchor if sequence.expires_at_anchor else None
    variables = {**start.variables, ZONE_VARIABLE: zone.key}
    rows = []
    for step in sequence.steps:
        when = step.send_time(start.anchor, testing_mode)
        status, sent_at, note = Status.QUEUED, None, ""
        if step.sent_by_website:
            status, sent_at, note = Status.SENT, start.anchor, "sent by the website"
        elif sequence.expires_at_anchor and when < now:
            status = Status.SKIPPED
            note = f"skipped: booked too late for this reminder (it was due {utc_text(when)})"
        else:
            when, note = place(sequence, when, zone, testing_mode=testing_mode, cap=cap)
            if expires_at is not None and when > expires_at:
                status = Status.SKIPPED
                note = f"skipped: {note or 'moved'}, after the meeting starts"
            elif sequence.timing.review:
                status = Status.REVIEW
        rows.append(
            NewRow(
                email=email,
                first_name=start.first_name,
                sequence=sequence.name,
                email_number=step.number,
                template_id=step.template_id,
                scheduled_time=when,
                dedupe_key=dedupe_key(event_key, sequence.name, step.number),
                variables=variables,
                status=status,
                expires_at=expires_at,
                contact_id=contact_id,
                sent_at=sent_at,
                error_message=note,
            )
        )
    return rows


def place(
    sequence: Sequence,
    when: datetime,
    zone: ZoneInfo,
    *,
    testing_mode: bool,
    cap: DailyCap | None = None,
) -> tuple[datetime, str]:
    """A step's real send time: the window's next opening (windows are off in testing mode),
    then a day with room under the cap (unless the sequence is cap_exempt); and why it moved."""
    window = None if testing_mode else sequence.timing.window
    note = ""
    if window is not None:
        opened = window.next_open(when, zone)
        if opened != when:
            note = f"moved to the send window ({window.describe()} {zone.key})"
        when = opened
    if cap is not None and not sequence.timing.cap_exempt:
        when, capped = cap.place(when, window)
        note = capped or note
    return when.astimezone(UTC), note

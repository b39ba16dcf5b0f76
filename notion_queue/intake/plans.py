"""What an event asks of the queue (a Plan), and how a sequence start becomes rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from notion_queue.models import ContactData, Delivery, NewRow, Status, utc_text
from notion_queue.sequences import Catalog


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
) -> list[NewRow]:
    """One row per step. A step the website already sent is recorded as sent; a step before a
    meeting whose moment has passed is recorded as skipped rather than sent late."""
    sequence = catalog[start.sequence]
    rows = []
    for step in sequence.steps:
        when = step.send_time(start.anchor, testing_mode)
        status, sent_at, note = Status.QUEUED, None, ""
        if step.sent_by_website:
            status, sent_at, note = Status.SENT, start.anchor, "sent by the website"
        elif sequence.expires_at_anchor and when < now:
            status = Status.SKIPPED
            note = f"skipped: booked too late for this reminder (it was due {utc_text(when)})"
        rows.append(
            NewRow(
                email=email,
                first_name=start.first_name,
                sequence=sequence.name,
                email_number=step.number,
                template_id=step.template_id,
                scheduled_time=when,
                dedupe_key=dedupe_key(event_key, sequence.name, step.number),
                variables=start.variables,
                status=status,
                expires_at=start.anchor if sequence.expires_at_anchor else None,
                contact_id=contact_id,
                sent_at=sent_at,
                error_message=note,
            )
        )
    return rows

"""What a trigger starts and ends, read from the catalog: each started sequence's anchor, and the
exit rules (its `cancels`, and the trigger's own) with the reason its rows' Error Message gives.

This is where exit rules are decided; intake/processor.py applies the Plan they go into.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from notion_queue.intake.payloads import parse_time
from notion_queue.intake.plans import CancelSequences, MoveSequence, StartSequence
from notion_queue.logs import get_logger
from notion_queue.models import utc_text
from notion_queue.sequences import Catalog, Sequence
from notion_queue.triggers import BOOKING, Trigger

log = get_logger(__name__)

DEFAULT_CANCEL_REASON = "{sequence} started {event_time}"


@dataclass(frozen=True)
class EventTimes:
    """The moments this event knows, any of which a sequence may be anchored on."""

    received_at: datetime
    meeting_start: datetime | None = None  # a booking's start
    email_1_sent_at: object = None  # as a website event sent it (checked when it is used)


def anchor_from(value: object, fallback: datetime, field: str) -> datetime:
    """A time from the payload, or when the event arrived (with a warning) when it is absent."""
    if value in (None, ""):
        log.warning("anchor_missing", field=field, fallback=fallback.isoformat())
        return fallback
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None


def anchor_for(sequence: Sequence, times: EventTimes) -> datetime:
    """The time the sequence's offsets count from (ValueError naming a field that is wrong)."""
    if sequence.anchor == "meeting_start":
        if times.meeting_start is None:  # the catalog check keeps this to bookings
            raise ValueError(f"{sequence.name} is anchored on a meeting, and this event has none")
        return times.meeting_start
    if sequence.anchor == "email_1_sent_at":
        return anchor_from(times.email_1_sent_at, times.received_at, "email_1_sent_at")
    return times.received_at


def anchors_for(trigger: Trigger, catalog: Catalog, times: EventTimes) -> dict[str, datetime]:
    """Each sequence the trigger starts, with its anchor; one anchor type is read once."""
    read: dict[str, datetime] = {}
    anchors = {}
    for name in trigger.starts:
        sequence = catalog[name]
        if sequence.anchor not in read:
            read[sequence.anchor] = anchor_for(sequence, times)
        anchors[name] = read[sequence.anchor]
    return anchors


def started_reason(sequence: Sequence, times: EventTimes, anchor: datetime) -> str:
    """Why a start cancels its `cancels`: the catalog's cancel_reason, or the default."""
    return (sequence.cancel_reason or DEFAULT_CANCEL_REASON).format(
        sequence=sequence.name,
        event_time=utc_text(times.received_at),
        anchor_time=utc_text(anchor),
    )


def run_trigger(
    trigger: Trigger,
    catalog: Catalog,
    times: EventTimes,
    anchors: dict[str, datetime],
    *,
    first_name: str,
    variables: dict[str, Any],
    reason: str,
) -> tuple[tuple[StartSequence, ...], tuple[CancelSequences, ...]]:
    """The sequences the trigger starts, and what ends: the trigger's own `cancels` (with
    `reason`, the event's own words) and each started sequence's `cancels`."""
    cancels = [CancelSequences(trigger.cancels, reason)] if trigger.cancels else []
    starts = []
    for name in trigger.starts:
        sequence = catalog[name]
        anchor = anchors[name]
        starts.append(StartSequence(name, anchor, first_name=first_name, variables=variables))
        if sequence.cancels:
            cancels.append(
                CancelSequences(sequence.cancels, started_reason(sequence, times, anchor))
            )
    return tuple(starts), tuple(cancels)


def meeting_sequences(catalog: Catalog) -> tuple[str, ...]:
    """A meeting's own sequences: those a booking starts that count from the meeting's start.
    A reschedule moves their rows; a host's "please rebook" holds them."""
    return tuple(
        name for name in catalog.trigger(BOOKING).starts if catalog[name].anchor == "meeting_start"
    )


def meeting_moved(catalog: Catalog, start: datetime) -> tuple[MoveSequence, ...]:
    reason = f"call moved to {utc_text(start)}"
    return tuple(MoveSequence(name, start, reason) for name in meeting_sequences(catalog))


def meeting_held(catalog: Catalog, reason: str) -> tuple[CancelSequences, ...]:
    held = meeting_sequences(catalog)
    return (CancelSequences(held, reason, hold=True),) if held else ()

"""Apply one journaled event to the store: upsert the contact, run the exit rules, create the
rows. Every step is idempotent, so an event interrupted half-way is simply applied again.

Notion allows 3 requests/s, so this reads what it needs once: the contact, then (unless the
address is brand new on a first attempt, when it can have no rows) every row of the address in
one query, from which the exit rules, reschedules, "already running" and Dedupe Key checks all
work. A new lead starting a 5-email sequence costs a contact lookup, a contact create and five
row creates; a retried event always reads, so a create that happened but timed out is found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from notion_queue.clock import Clock
from notion_queue.daily_cap import DailyCap
from notion_queue.errors import MaybeWritten, RetryableError
from notion_queue.intake.handlers import build_handlers
from notion_queue.intake.journal import JournalEntry
from notion_queue.intake.plans import (
    ALL_SEQUENCES,
    HELD_NOTE,
    LEGACY_WAITING_NOTE,
    CancelSequences,
    Plan,
    StartSequence,
    expand,
    place,
)
from notion_queue.logs import get_logger
from notion_queue.models import (
    ACTIVE_STATUSES,
    Delivery,
    NewRow,
    QueueRow,
    RowUpdate,
    Status,
    delivery_advances,
)
from notion_queue.sequences import Catalog
from notion_queue.store.base import ContactBook, RowQueue
from notion_queue.timezones import UTC_ZONE, contact_zone
from notion_queue.transitions import change_status

log = get_logger(__name__)


def already_running(
    catalog: Catalog, rows: list[QueueRow], sequence: str, *, ignore: str = ""
) -> bool:
    """Never two runs of one sequence for one address: a lead who signs up twice gets one
    lead_nurture (a meeting's reminders are per meeting, so they always start). Rows whose
    Dedupe Key starts with `ignore` (this very event's, on a retry) do not count. The
    webhooks and `notion-queue enqueue` both follow this rule."""
    if catalog[sequence].anchor == "meeting_start":
        return False
    return any(
        row.sequence == sequence
        and row.status in ACTIVE_STATUSES
        and not (ignore and row.dedupe_key.startswith(ignore))
        for row in rows
    )


class IntakeStore(RowQueue, ContactBook, Protocol):
    """What intake asks of the store: the address's contact and its rows."""


@dataclass
class Applied:
    created: int = 0
    existing: int = 0
    cancelled: int = 0
    moved: int = 0
    not_started: list[str] = field(default_factory=list)


class IntakeProcessor:
    def __init__(
        self,
        store: IntakeStore,
        catalog: Catalog,
        clock: Clock,
        *,
        testing_mode: bool = False,
        default_zone: ZoneInfo = UTC_ZONE,
        max_emails_per_day: int | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.clock = clock
        self.testing_mode = testing_mode
        self.default_zone = default_zone
        self.max_emails_per_day = max_emails_per_day
        self.handlers = build_handlers(catalog)

    def plan(self, entry: JournalEntry) -> Plan:
        handler = self.handlers.get(entry.kind)
        if handler is None:  # journaled before the catalog changed: it can never be applied
            raise ValueError(
                f"no trigger {entry.kind!r} in the catalog (it was removed after this event "
                "was accepted); post the event again to another trigger if it still matters"
            )
        payload = handler.model.model_validate(entry.payload)
        return handler.plan(payload, entry.received_at, self.catalog)

    def apply(self, entry: JournalEntry) -> Applied:
        plan = self.plan(entry)
        applied = Applied()
        for message_id, state in plan.deliveries:
            self._record_delivery(message_id, state)
        contact_id = None
        new_address = False
        zone = self.default_zone
        if plan.contact is not None:
            contact, outcome = self.store.upsert_contact(plan.contact)
            contact_id, new_address = contact.id, outcome == "created"
            # The event's zone (now on the contact), else the one a marketer typed there.
            zone = contact_zone(contact.time_zone, plan.email) or zone
        # A first attempt at an address Notion has never seen, that only starts sequences, can
        # find no rows of it: skip the read. Exit rules always read (rows may exist by hand).
        brand_new = new_address and entry.attempts == 0 and not (plan.cancels or plan.moves)
        needed = plan.starts or plan.cancels or plan.moves
        rows = [] if brand_new or not needed else self.store.rows_for_email(plan.email)
        mine = f"{entry.event_key}/"
        for rule in plan.cancels:
            applied.cancelled += self._cancel(rows, rule, mine)
        moved: set[str] = set()
        cap = (
            DailyCap.from_rows(self.max_emails_per_day, zone, rows, self.catalog, skip=mine)
            if self.max_emails_per_day and plan.starts
            else None
        )
        for move in plan.moves:
            count = self._move(rows, move.sequence, move.new_anchor, move.reason, zone)
            applied.moved += count
            if count:
                moved.add(move.sequence)
        existing_keys = {row.dedupe_key for row in rows}
        for start in plan.starts:
            if start.sequence in moved:
                continue  # a reschedule moved the rows it already had
            if self._already_running(rows, start, mine):
                applied.not_started.append(start.sequence)
                continue
            fresh: list[NewRow] = []
            for row in expand(
                start,
                email=plan.email,
                catalog=self.catalog,
                event_key=entry.event_key,
                now=self.clock.now(),
                testing_mode=self.testing_mode,
                contact_id=contact_id,
                zone=zone,
                cap=cap,
            ):
                if row.dedupe_key in existing_keys:
                    applied.existing += 1
                    continue
                fresh.append(row)
            try:
                self.store.add_rows(fresh)  # SQLite: one transaction; Notion: one create each
            except MaybeWritten:
                # Notion may have created them: the next attempt reads the rows first.
                raise RetryableError(
                    f"creating the {start.sequence} rows may or may not have happened"
                ) from None
            applied.created += len(fresh)
        log.info(
            "event_applied",
            event_id=entry.id,
            kind=entry.kind,
            created=applied.created,
            existing=applied.existing,
            cancelled=applied.cancelled,
            moved=applied.moved,
            not_started=applied.not_started or None,
        )
        return applied

    def _record_delivery(self, message_id: str, state: Delivery) -> None:
        row = self.store.find_by_message_id(message_id)
        if row is None:
            return  # sent by something else (the website's email 1)
        if delivery_advances(row.delivery, state):
            self.store.update_row(row.id, RowUpdate(delivery=state))

    def _already_running(self, rows: list[QueueRow], start: StartSequence, mine: str) -> bool:
        return already_running(self.catalog, rows, start.sequence, ignore=mine)

    def _cancel(self, rows: list[QueueRow], rule: CancelSequences, mine: str) -> int:
        statuses = {Status.QUEUED} if rule.hold else ACTIVE_STATUSES
        new, note = (
            (Status.WAITING, f"{HELD_NOTE}{rule.reason}")
            if rule.hold
            else (Status.CANCELLED, f"cancelled: {rule.reason}")
        )
        count = 0
        for row in rows:
            in_scope = ALL_SEQUENCES in rule.sequences or row.sequence in rule.sequences
            if not in_scope or row.status not in statuses or row.dedupe_key.startswith(mine):
                continue
            if change_status(self.store, row, new, error_message=note) is not None:
                count += 1
        return count

    def _move(
        self,
        rows: list[QueueRow],
        sequence_name: str,
        new_anchor: datetime,
        reason: str,
        zone: ZoneInfo,
    ) -> int:
        sequence = self.catalog[sequence_name]
        now = self.clock.now()
        count = 0
        movable = ACTIVE_STATUSES | {Status.SKIPPED}
        for row in rows:
            if row.sequence != sequence_name or row.status not in movable:
                continue
            step = next((s for s in sequence.steps if s.number == row.email_number), None)
            if step is None:
                continue
            when = step.send_time(new_anchor, self.testing_mode)
            if when >= now:  # into the sequence's send window, if it has one
                when, _ = place(sequence, when, zone, testing_mode=self.testing_mode)
            too_late = when < now or (sequence.expires_at_anchor and when > new_anchor)
            status = Status.SKIPPED if too_late else Status.QUEUED
            held_by_marketer = row.status is Status.PAUSED and not row.error_message.startswith(
                LEGACY_WAITING_NOTE  # a hold written before `waiting` existed (see plans)
            )
            if held_by_marketer and status is Status.QUEUED:
                status = Status.PAUSED
            if row.status is Status.REVIEW and status is Status.QUEUED:
                status = Status.REVIEW  # still waits for a marketer's approval
            note = reason if status is not Status.SKIPPED else f"skipped: {reason}, too late"
            written = change_status(
                self.store,
                row,
                status,
                scheduled_time=when,
                expires_at=new_anchor if sequence.expires_at_anchor else None,
                error_message=note,
            )
            if written is not None:
                count += 1
        return count

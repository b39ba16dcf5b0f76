"""Apply one journaled event to the store: upsert the contact, run the exit rules, create the
rows. Every step is idempotent, so an event interrupted half-way is simply applied again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from notion_queue.clock import Clock
from notion_queue.errors import MaybeWritten, RetryableError
from notion_queue.intake.handlers import HANDLERS
from notion_queue.intake.journal import JournalEntry
from notion_queue.intake.plans import (
    ALL_SEQUENCES,
    WAITING,
    CancelSequences,
    Plan,
    StartSequence,
    expand,
)
from notion_queue.logs import get_logger
from notion_queue.models import ACTIVE_STATUSES, RowUpdate, Status, can_transition
from notion_queue.sequences import Catalog
from notion_queue.store.base import QueueStore

log = get_logger(__name__)


@dataclass
class Applied:
    created: int = 0
    existing: int = 0
    cancelled: int = 0
    moved: int = 0
    not_started: list[str] = field(default_factory=list)


class IntakeProcessor:
    def __init__(
        self, store: QueueStore, catalog: Catalog, clock: Clock, *, testing_mode: bool = False
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.clock = clock
        self.testing_mode = testing_mode

    def plan(self, entry: JournalEntry) -> Plan:
        handler = HANDLERS[entry.kind]
        payload = handler.model.model_validate(entry.payload)
        return handler.plan(payload, entry.received_at)

    def apply(self, entry: JournalEntry) -> Applied:
        plan = self.plan(entry)
        applied = Applied()
        contact = self.store.upsert_contact(plan.contact)
        for rule in plan.cancels:
            applied.cancelled += self._cancel(plan.email, rule, entry)
        moved: set[str] = set()
        for move in plan.moves:
            count = self._move(plan.email, move.sequence, move.new_anchor, move.reason)
            applied.moved += count
            if count:
                moved.add(move.sequence)
        for start in plan.starts:
            if start.sequence in moved:
                continue  # a reschedule moved the rows it already had
            if self._already_running(plan.email, start, entry):
                applied.not_started.append(start.sequence)
                continue
            rows = expand(
                start,
                email=plan.email,
                catalog=self.catalog,
                event_key=entry.event_key,
                now=self.clock.now(),
                testing_mode=self.testing_mode,
                contact_id=contact.id,
            )
            for row in rows:
                if self.store.find_by_dedupe_key(row.dedupe_key) is not None:
                    applied.existing += 1
                    continue
                try:
                    self.store.add_row(row)
                except MaybeWritten:
                    # Notion may have created it: the next attempt looks the key up first.
                    raise RetryableError(
                        f"creating {row.dedupe_key} may or may not have happened"
                    ) from None
                applied.created += 1
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

    def _already_running(self, email: str, start: StartSequence, entry: JournalEntry) -> bool:
        """Never two runs of one sequence for one address: a lead who signs up twice gets one
        lead_nurture. Rows from this very event (a retry) do not count."""
        if self.catalog[start.sequence].anchor == "meeting_start":
            return False
        active = self.store.rows_for_email(email, sequence=start.sequence, statuses=ACTIVE_STATUSES)
        others = [r for r in active if not r.dedupe_key.startswith(f"{entry.event_key}/")]
        if others:
            log.info("sequence_already_running", sequence=start.sequence, event_id=entry.id)
        return bool(others)

    def _cancel(self, email: str, rule: CancelSequences, entry: JournalEntry) -> int:
        count = 0
        statuses = {Status.QUEUED} if rule.hold else ACTIVE_STATUSES
        update = (
            RowUpdate(status=Status.PAUSED, error_message=f"{WAITING}{rule.reason}")
            if rule.hold
            else RowUpdate(status=Status.CANCELLED, error_message=f"cancelled: {rule.reason}")
        )
        sequences: tuple[str | None, ...] = (
            (None,) if ALL_SEQUENCES in rule.sequences else rule.sequences
        )
        for sequence in sequences:
            for row in self.store.rows_for_email(email, sequence=sequence, statuses=statuses):
                if row.dedupe_key.startswith(f"{entry.event_key}/"):
                    continue
                self.store.update_row(row.id, update)
                count += 1
        return count

    def _move(self, email: str, sequence_name: str, new_anchor: datetime, reason: str) -> int:
        sequence = self.catalog[sequence_name]
        now = self.clock.now()
        count = 0
        for row in self.store.rows_for_email(
            email, sequence=sequence_name, statuses=ACTIVE_STATUSES | {Status.SKIPPED}
        ):
            step = next((s for s in sequence.steps if s.number == row.email_number), None)
            if step is None:
                continue
            when = step.send_time(new_anchor, self.testing_mode)
            status = Status.QUEUED if when >= now else Status.SKIPPED
            held_by_marketer = row.status is Status.PAUSED and not row.error_message.startswith(
                WAITING
            )
            if held_by_marketer and status is Status.QUEUED:
                status = Status.PAUSED
            if row.status is None or not can_transition(row.status, status):
                continue
            note = reason if status is not Status.SKIPPED else f"skipped: {reason}, too late"
            self.store.update_row(
                row.id,
                RowUpdate(
                    status=status,
                    scheduled_time=when,
                    expires_at=new_anchor if sequence.expires_at_anchor else None,
                    error_message=note,
                ),
            )
            count += 1
        return count

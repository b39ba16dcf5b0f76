"""The worker cycle: find due rows, render, send, mark each sent, failed or skipped.

Safe to kill at any moment. A row is marked sent only after the mailer accepted it; a worker
killed in between sends again with the same idempotency key, and the mailer answers with the
first message instead of sending a second. On the outbox and SQLite a batch's rows are marked
together, after one fsync makes all its messages durable (`_send_rows`).

Its side jobs live next door: the lease (`lease.py`), the status file /readyz reads
(`worker_status.py`), the unsubscribed addresses (`suppression.py`) and the email made from a
row and its template (`compose.py`); whether a row may be sent, judged on the row alone, is
`row_checks.py`.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from notion_queue import metrics
from notion_queue.batch_journal import KEY_WINDOW, BatchJournal, PendingBatch
from notion_queue.clock import Clock
from notion_queue.compose import Composer
from notion_queue.errors import (
    AccountError,
    MaybeWritten,
    PermanentError,
    RateLimited,
    RetryableError,
)
from notion_queue.event_fields import FieldSpec
from notion_queue.lease import Lease, account_probe_delay
from notion_queue.logs import get_logger
from notion_queue.mail.base import BatchMailer, Mailer, OutgoingEmail, SendResult
from notion_queue.mail.batch import Batch, batch_problem
from notion_queue.mail.group_sync import SyncLater
from notion_queue.models import QueueRow, RowUpdate, Status
from notion_queue.pacing import Backoff
from notion_queue.row_checks import not_sendable
from notion_queue.store.base import (
    ContactBook,
    OutcomeLog,
    OutcomeRecord,
    QueueLease,
    RecordedUpdates,
    RowClaims,
    RowNotFound,
    RowQueue,
)
from notion_queue.suppression import SuppressionList
from notion_queue.template_requests import TemplateJob
from notion_queue.templates import TemplateSource
from notion_queue.timezones import UTC_ZONE
from notion_queue.transitions import (
    RecordedChange,
    change_status,
    change_status_recorded,
    change_statuses_recorded,
)
from notion_queue.unsubscribe import UnsubscribeTokens
from notion_queue.wakeup import WakeListener
from notion_queue.windows import Window
from notion_queue.worker_status import StatusFile
from notion_queue.worker_windows import outside_window

log = get_logger("notion_queue.worker")

Outcome = Literal["sent", "failed", "skipped", "cancelled", "retry", "unchanged"]
# A row is sent with data at most this old, else it is re-read first (a marketer's pause or edit
# wins). Batches are sized so that a batch is sent within it at the mail rate.
STALE_AFTER_SECONDS = 10.0
RATE_LIMIT_WAITS_PER_ROW = 5
WAKE_MARGIN_SECONDS = 0.01
# On a store with row claims (PostgreSQL): how long a worker holds the rows it took. Well past a
# batch's STALE_AFTER_SECONDS; a killed worker's rows come back after it.
CLAIM_TTL_SECONDS = 120.0


@dataclass(frozen=True)
class WorkerConfig:
    sender: str
    reply_to: str | None = None
    max_attempts: int = 5
    poll_interval: float = 60.0
    public_base_url: str = "http://localhost:8000"
    campaign_variables: dict[str, Any] = field(default_factory=dict)
    event_fields: dict[str, FieldSpec] = field(default_factory=dict)  # the catalog's [fields]
    concurrency: int = 1
    batch_size: int = 8  # wiring sizes it to STALE_AFTER_SECONDS at the mail rate
    claim_ttl: float = CLAIM_TTL_SECONDS
    default_zone: ZoneInfo = UTC_ZONE  # DEFAULT_TIMEZONE
    windows: dict[str, Window] = field(default_factory=dict)  # send windows by sequence


def batch_size_for(mail_rate: float | None) -> int:
    """Rows per fresh query: as many as the mailer sends in STALE_AFTER_SECONDS (100 at most,
    Notion's page size, less the one row that tells whether more are due)."""
    if mail_rate is None:
        return 99
    return max(1, min(99, int(mail_rate * STALE_AFTER_SECONDS)))


def new_worker_id() -> str:
    """An id no other worker process has, on any host."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


@dataclass
class CycleSummary:
    """What one cycle did, by outcome; `account_error` says why sending stopped early, and
    `probe_after` how long to wait before trying again (a daily quota: the next UTC day)."""

    outcomes: dict[Outcome, int] = field(default_factory=dict)
    account_error: str | None = None
    probe_after: float = 0.0
    next_due: datetime | None = None

    def add(self, outcome: Outcome) -> None:
        if outcome != "unchanged":
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def __getitem__(self, outcome: Outcome) -> int:
        return self.outcomes.get(outcome, 0)

    @property
    def handled(self) -> int:
        return sum(self.outcomes.values())


@dataclass(frozen=True)
class _Sent:
    """A row sent and not yet marked: its message is durable after the batch's sync."""

    row: QueueRow
    result: SendResult
    attempts: int
    at: datetime
    lateness: float | None


@dataclass
class _DeferredMarks:
    """One batch's sent rows, marked together once the mailer has synced (see _send_rows)."""

    mailer: SyncLater
    store: RecordedUpdates
    sent: list[_Sent] = field(default_factory=list)  # appended to by the send threads


class WorkerStore(RowQueue, ContactBook, OutcomeLog, QueueLease, Protocol):
    """What the worker asks of the store: due rows, who unsubscribed, outcomes, the lease."""


class Worker:
    def __init__(
        self,
        store: WorkerStore,
        mailer: Mailer,
        templates: TemplateSource,
        clock: Clock,
        config: WorkerConfig,
        *,
        unsubscribe: UnsubscribeTokens | None = None,
        backoff: Backoff | None = None,
        status_file: Path | None = None,
        batches: BatchJournal | None = None,
        wake: WakeListener | None = None,
        worker_id: str | None = None,
    ) -> None:
        """`wake`: the FIFO the server pokes when it queues a row due before the next poll;
        `worker_id`: who claims rows (and holds batches) on a store with row claims."""
        self.store = store
        # Set (with a BatchMailer): rows go out up to 100 a request (see _send_batches).
        self.batches = batches if isinstance(mailer, BatchMailer) else None
        self.mailer = mailer
        self.templates = templates
        self.clock = clock
        self.config = config
        self.backoff = backoff or Backoff(base=30, cap=1800)
        self.stop_event = threading.Event()
        self.status = StatusFile(status_file, clock)
        self.lease = Lease(store, clock, self.status, self.stop_event)
        self.suppressed = SuppressionList(store, clock)
        self.composer = Composer(
            sender=config.sender,
            reply_to=config.reply_to,
            public_base_url=config.public_base_url,
            campaign_variables=config.campaign_variables,
            event_fields=config.event_fields,
            unsubscribe=unsubscribe,
            default_zone=config.default_zone,
        )
        self._not_before: dict[str, datetime] = {}
        # Who claims rows on a store with row claims: unique per process, on any host.
        self.worker_id = worker_id or new_worker_id()
        # Test sends, Preview links, per-template counts (wiring attaches them on Notion)
        self.template_jobs: tuple[TemplateJob, ...] = ()
        self.wake = wake

    # the cycle

    def run_once(self) -> CycleSummary:
        """One poll: send every due row (up to `concurrency` at once, paced by the mailer and
        the store), and note when the next known row falls due.

        Rows are taken a small batch at a time, each batch from a fresh query, so the data a
        row is sent with is seconds old: a marketer's pause or edit wins without a re-read of
        every row (re-reads would cost a Notion request per email)."""
        summary = CycleSummary()
        for job in self.template_jobs:
            job.run_once()  # paced by themselves (a Templates query at most each 30 s); never raise
        now = self.clock.now()
        horizon = now + timedelta(seconds=self.config.poll_interval)
        handled: set[str] = set()
        pool = ThreadPoolExecutor(self.config.concurrency) if self.config.concurrency > 1 else None
        try:
            if self.batches is not None:
                self._resend_pending(handled, summary)
            more = True
            last: QueueRow | None = None  # keyset: each query starts behind the last batch
            while more and not self.stop_event.is_set():
                batch, more = self._next_batch(horizon, now, handled, summary, last)
                if not batch:
                    break
                last = batch[-1]
                fetched_at = self.clock.monotonic()
                handled.update(row.id for row in batch)
                if self.batches is not None:
                    self._send_batches(self.batches, batch, fetched_at, summary)
                else:
                    self._send_rows(batch, fetched_at, pool, summary)
        except AccountError as exc:
            summary.account_error = str(exc)
            summary.probe_after = account_probe_delay(exc)
            metrics.SENDING_PAUSED.set(1)
            log.error(
                "account_error",
                reason=str(exc),
                action="sending paused until it works",
                retry_in=round(summary.probe_after),
            )
        except RetryableError as exc:
            log.warning("cycle_interrupted", reason=str(exc))
        else:
            metrics.SENDING_PAUSED.set(0)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)  # the rows in hand are finished, whatever happened
        return summary

    def _send_rows(
        self,
        batch: list[QueueRow],
        fetched_at: float,
        pool: ThreadPoolExecutor | None,
        summary: CycleSummary,
    ) -> None:
        """Each row of the batch, `concurrency` at once. Where the mailer can make its sends
        durable together and the store can mark many rows in one commit (the outbox and
        SQLite), the batch's sent rows are marked after it: one folder fsync, then one commit."""
        deferred = None
        if isinstance(self.mailer, SyncLater) and isinstance(self.store, RecordedUpdates):
            deferred = _DeferredMarks(self.mailer, self.store)
        try:
            if pool is None:
                for row in batch:
                    if self.stop_event.is_set():
                        break
                    summary.add(self.process(row, fetched_at, deferred))
            else:
                futures = [pool.submit(self.process, row, fetched_at, deferred) for row in batch]
                wait(futures)
                for future in futures:
                    summary.add(future.result())  # an AccountError ends the cycle here
        finally:
            if deferred is not None:
                self._mark_deferred(deferred, summary)

    def _mark_deferred(self, deferred: _DeferredMarks, summary: CycleSummary) -> None:
        """The batch's sent rows, marked once every message of it is durable."""
        if not deferred.sent:
            return
        deferred.mailer.sync()  # before any mark: a row marked sent has its message on disk
        changes = [
            RecordedChange(
                sent.row,
                Status.SENT,
                OutcomeRecord(
                    "sent",
                    sent.at,
                    message_id=sent.result.message_id,
                    lateness_seconds=sent.lateness,
                ),
                sent_at=sent.at,
                resend_email_id=sent.result.message_id,
                error_message="",
                attempts=sent.attempts,
            )
            for sent in deferred.sent
        ]
        written = change_statuses_recorded(deferred.store, changes)
        for sent, done in zip(deferred.sent, written, strict=True):
            if isinstance(done, BaseException):
                log.warning("row_not_marked", row_id=sent.row.id, reason=str(done))
            elif done:
                summary.add(self._marked_sent(sent.row, sent.result, sent.at, sent.lateness))

    def _next_batch(
        self,
        horizon: datetime,
        now: datetime,
        handled: set[str],
        summary: CycleSummary,
        resume_after: QueueRow | None,
    ) -> tuple[list[QueueRow], bool]:
        """Up to `batch_size` due rows not yet handled in this cycle, from one fresh query, and
        whether more may be due after them. The query asks for one row more than the batch and
        covers the coming interval too, so a short page or a row not yet due says "nothing more
        now" (no extra query to find out) and tells the worker when to wake next. The query
        starts behind `resume_after` (the last batch's last row), so no batch reads the rows
        handled before it again, however many of them are still queued (retries)."""
        if isinstance(self.store, RowClaims):
            return self._claim_batch(self.store, now, handled, summary)
        batch: list[QueueRow] = []
        for row in self.store.due_rows(
            horizon, page_size=self.config.batch_size + 1, after=resume_after
        ):
            if row.id in handled:
                continue
            if row.scheduled_time is not None and row.scheduled_time > now:
                if summary.next_due is None or row.scheduled_time < summary.next_due:
                    summary.next_due = row.scheduled_time
                return batch, False  # sorted by Scheduled Time: nothing after this is due
            if len(batch) == self.config.batch_size:
                return batch, True  # the row after the batch is due too
            batch.append(row)
        return batch, False

    def _claim_batch(
        self, store: RowClaims, now: datetime, handled: set[str], summary: CycleSummary
    ) -> tuple[list[QueueRow], bool]:
        """Several workers on one queue: the rows this worker claimed (held by no other), and
        whether more may be due; a short claim asks when the next row may be claimed."""
        size = self.config.batch_size
        claimed = store.claim_due(self.worker_id, now, size, self.config.claim_ttl, skip=handled)
        if len(claimed) < size:
            summary.next_due = store.next_due_time(now)
        return claimed, len(claimed) == size

    def run_forever(self) -> None:
        """Poll every POLL_INTERVAL_SECONDS (sooner when a row falls due before that) until
        stop() (SIGTERM/SIGINT); the rows in hand are finished before the worker exits."""
        log.info("worker_started", poll_interval=self.config.poll_interval)
        while not self.stop_event.is_set():
            other = self.lease.hold()
            if self.stop_event.is_set():
                break
            if other is not None:
                log.error("lease_lost", holder=other, action="stopping: another worker serves")
                break
            summary = self.run_once()
            self.write_status(summary)
            if summary.handled:
                log.info("cycle_done", **summary.outcomes)
            wait_for = self.config.poll_interval
            if summary.account_error:
                wait_for = max(wait_for, summary.probe_after)  # the probe: try again, gently
            elif summary.next_due is not None:
                until_due = (summary.next_due - self.clock.now()).total_seconds()
                # A hair after the row falls due, so the wake-up query finds it due.
                wait_for = min(wait_for, max(0.0, until_due) + WAKE_MARGIN_SECONDS)
            self._pause(wait_for, wakeable=not summary.account_error)
        log.info("worker_stopped")

    def _pause(self, seconds: float, *, wakeable: bool) -> None:
        """Until the next poll, or sooner when the server wakes us (or stop()); a paused
        account waits its probe out whatever is queued meanwhile."""
        if self.wake is None or not wakeable:
            self.stop_event.wait(seconds)
        elif self.wake.wait(seconds) and not self.stop_event.is_set():
            log.debug("worker_woken")

    def write_status(self, summary: CycleSummary) -> None:
        """What the server's /readyz shows of the worker: whether sending is paused, and why."""
        self.status.after_cycle(summary.outcomes, summary.account_error)

    def stop(self) -> None:
        self.stop_event.set()
        if self.wake is not None:
            self.wake.poke()

    # batches (a BatchMailer and a store whose pending batches are kept: see batch_journal.py)

    def _send_batches(
        self, journal: BatchJournal, rows: list[QueueRow], fetched_at: float, summary: CycleSummary
    ) -> None:
        """The rows' checks as one at a time, then one request for every email Resend takes
        in a batch; an email it would refuse goes alone, so it fails alone."""
        items: list[tuple[QueueRow, OutgoingEmail]] = []
        for row in rows:
            try:
                prepared = self._prepare(row, fetched_at)
            except RetryableError as exc:
                log.warning("row_deferred", row_id=row.id, sequence=row.sequence, reason=str(exc))
                summary.add("retry")
                continue
            if isinstance(prepared, str):
                summary.add(prepared)
            elif batch_problem(prepared[1]) is not None:
                summary.add(self._send(*prepared))
            else:
                items.append(prepared)
        if items:
            batch = Batch.of((row.id, email) for row, email in items)
            try:
                journal.record(batch)
            except RetryableError as exc:
                # Nothing kept, nothing sent: the rows are claimed afresh and grouped anew.
                log.warning("batch_not_started", rows=len(items), reason=str(exc))
                summary.outcomes["retry"] = summary["retry"] + len(items)
                return
            self._send_recorded(journal, batch, {row.id: row for row, _ in items}, summary)

    def _resend_pending(self, handled: set[str], summary: CycleSummary) -> None:
        """Batches a killed worker left: sent again exactly as they were, before anything new;
        their rows go no other way while one is pending."""
        assert self.batches is not None
        for pending in self.batches.pending():
            batch = pending.batch
            handled.update(batch.row_ids)
            rows = {}
            for row_id in batch.row_ids:
                try:
                    row = self.store.get_row(row_id)
                except RowNotFound:
                    continue
                if row.status is not Status.SENT:  # marked before the worker was killed
                    rows[row_id] = row
            if self._past_key_window(pending):
                self._give_up_batch(self.batches, pending, rows, summary)
                continue
            log.info("batch_resent", rows=len(batch.row_ids), key=batch.idempotency_key)
            self._send_recorded(self.batches, batch, rows, summary)

    def _past_key_window(self, pending: PendingBatch) -> bool:
        return (
            pending.recorded_at is not None and self.clock.now() - pending.recorded_at > KEY_WINDOW
        )

    def _give_up_batch(
        self,
        journal: BatchJournal,
        pending: PendingBatch,
        rows: dict[str, QueueRow],
        summary: CycleSummary,
    ) -> None:
        """A batch started longer ago than Resend keeps its key: sent again, it might go out
        twice, so its rows fail, saying so, and a marketer decides (nothing twice, nothing lost
        from sight)."""
        assert pending.recorded_at is not None
        started = pending.recorded_at.isoformat(timespec="seconds")
        reason = (
            f"its batch was started at {started} and not confirmed within"
            f" {KEY_WINDOW.total_seconds() / 3600:g} h; Resend forgets a batch's key after 24 h,"
            " so sending it again might send it twice. Check Resend's log for this address"
            f" (batch key {pending.batch.idempotency_key}) and set Status to queued to send it"
        )
        log.error(
            "batch_expired", rows=len(pending.batch.row_ids), key=pending.batch.idempotency_key
        )
        for row in rows.values():
            summary.add(self._fail(row, reason))
        journal.done(pending.batch)

    def _send_recorded(
        self,
        journal: BatchJournal,
        batch: Batch,
        rows: dict[str, QueueRow],
        summary: CycleSummary,
    ) -> None:
        assert isinstance(self.mailer, BatchMailer)
        for _ in range(RATE_LIMIT_WAITS_PER_ROW):
            if not journal.hold(batch):
                # This worker stalled past its hold and another took the batch over: it sends.
                log.warning("batch_taken_over_by_another", key=batch.idempotency_key)
                return
            try:
                results = self.mailer.send_batch(batch.emails, batch.idempotency_key)
                break
            except RateLimited as exc:
                self.clock.sleep(exc.retry_after or 1.0)
            except (RetryableError, MaybeWritten) as exc:
                # Kept as it is: the next cycle sends this very batch again, first.
                log.warning("batch_deferred", rows=len(batch.row_ids), reason=str(exc))
                summary.outcomes["retry"] = summary["retry"] + len(batch.row_ids)
                return
            except PermanentError as exc:
                # Refused as a whole, so nothing in it went out: each row alone, for its verdict.
                journal.done(batch)
                log.warning("batch_refused", rows=len(batch.row_ids), reason=str(exc))
                for row_id, email in zip(batch.row_ids, batch.emails, strict=True):
                    if row_id in rows:
                        summary.add(self._send(rows[row_id], email))
                return
        else:
            summary.outcomes["retry"] = summary["retry"] + len(batch.row_ids)
            return
        for row_id, result in zip(batch.row_ids, results, strict=True):
            if row_id in rows:
                summary.add(self._mark_sent(rows[row_id], result, rows[row_id].attempts + 1))
        journal.done(batch)

    # one row

    def process(
        self, row: QueueRow, fetched_at: float, deferred: _DeferredMarks | None = None
    ) -> Outcome:
        try:
            return self._process(row, fetched_at, deferred)
        except AccountError:
            raise
        except RetryableError as exc:
            log.warning("row_deferred", row_id=row.id, sequence=row.sequence, reason=str(exc))
            return "retry"

    def _process(
        self, row: QueueRow, fetched_at: float, deferred: _DeferredMarks | None
    ) -> Outcome:
        prepared = self._prepare(row, fetched_at)
        if isinstance(prepared, str):
            return prepared
        return self._send(*prepared, deferred=deferred)

    def _prepare(
        self, row: QueueRow, fetched_at: float
    ) -> Outcome | tuple[QueueRow, OutgoingEmail]:
        """The row (re-read when stale) and its email, or what became of a row not to send."""
        now = self.clock.now()
        not_before = self._not_before.get(row.id)
        if not_before is not None and now < not_before:
            return "unchanged"
        if self.clock.monotonic() - fetched_at > STALE_AFTER_SECONDS:
            # A marketer may have paused, edited or moved the row since the query.
            try:
                row = self.store.get_row(row.id)
            except RowNotFound:
                return "unchanged"
        not_now = not_sendable(row, now)
        if not_now is not None:
            if not_now.action == "leave":
                return "unchanged"
            if not_now.action == "skip":
                return self._finish(row, Status.SKIPPED, not_now.reason)
            return self._fail(row, not_now.reason)
        if row.email in self.suppressed:
            return self._finish(
                row, Status.CANCELLED, "cancelled: the address is unsubscribed or suppressed"
            )
        moved = outside_window(row, self.config.windows, self.config.default_zone)
        if moved is not None:
            if moved.skip:
                return self._finish(row, Status.SKIPPED, moved.reason)
            change_status(
                self.store,
                row,
                Status.QUEUED,
                scheduled_time=moved.when,
                error_message=moved.reason,
            )
            log.info("row_moved_to_window", row_id=row.id, sequence=row.sequence)
            return "unchanged"
        try:
            email = self.composer.compose(row, self.templates.get(row.template_id))
        except PermanentError as exc:
            return self._fail(row, str(exc))
        return row, email

    def _send(
        self, row: QueueRow, email: OutgoingEmail, *, deferred: _DeferredMarks | None = None
    ) -> Outcome:
        attempts = row.attempts + 1
        for _ in range(RATE_LIMIT_WAITS_PER_ROW):
            try:
                if deferred is not None:
                    result = deferred.mailer.send_unsynced(email)
                else:
                    result = self.mailer.send(email)
                break
            except RateLimited as exc:
                self.clock.sleep(exc.retry_after or 1.0)
            except (RetryableError, MaybeWritten) as exc:
                return self._retry_later(row, attempts, str(exc))
            except PermanentError as exc:
                return self._fail(row, str(exc), attempts=attempts)
        else:
            return self._retry_later(row, row.attempts, "mailer kept answering 429")
        if deferred is not None:
            self._not_before.pop(row.id, None)
            deferred.sent.append(_Sent(row, result, attempts, *self._sent_at(row)))
            return "unchanged"  # counted once marked, after the batch (_mark_deferred)
        return self._mark_sent(row, result, attempts)

    def _sent_at(self, row: QueueRow) -> tuple[datetime, float | None]:
        """Now, and how late that is for the row (None: no Scheduled Time)."""
        now = self.clock.now()
        return now, (now - row.scheduled_time).total_seconds() if row.scheduled_time else None

    def _mark_sent(self, row: QueueRow, result: SendResult, attempts: int) -> Outcome:
        self._not_before.pop(row.id, None)
        now, lateness = self._sent_at(row)
        marked = change_status_recorded(
            self.store,
            row,
            Status.SENT,
            OutcomeRecord("sent", now, message_id=result.message_id, lateness_seconds=lateness),
            sent_at=now,
            resend_email_id=result.message_id,
            error_message="",
            attempts=attempts,
        )
        if marked is None:
            return "unchanged"
        return self._marked_sent(row, result, now, lateness)

    def _marked_sent(
        self, row: QueueRow, result: SendResult, now: datetime, lateness: float | None
    ) -> Outcome:
        metrics.ROWS.labels("sent", row.sequence or "none").inc()
        if lateness is not None:
            metrics.LATENESS.observe(max(0.0, lateness))
        log.info(
            "row_sent",
            row_id=row.id,
            sequence=row.sequence,
            template_id=row.template_id,
            message_id=result.message_id,
            replayed=result.replayed,
            lateness_seconds=lateness,
        )
        return "sent"

    def _retry_later(self, row: QueueRow, attempts: int, reason: str) -> Outcome:
        if attempts >= self.config.max_attempts:
            return self._fail(
                row, f"gave up after {attempts} attempts: {reason}", attempts=attempts
            )
        self._not_before[row.id] = self.clock.now() + timedelta(
            seconds=self.backoff.delay(attempts)
        )
        self.store.update_row(
            row.id, RowUpdate(attempts=attempts, error_message=f"will retry: {reason}")
        )
        log.warning(
            "row_retry", row_id=row.id, sequence=row.sequence, attempts=attempts, reason=reason
        )
        return "retry"

    def _fail(self, row: QueueRow, reason: str, *, attempts: int | None = None) -> Outcome:
        return self._finish(row, Status.FAILED, reason, attempts=attempts)

    def _finish(
        self, row: QueueRow, status: Status, reason: str, *, attempts: int | None = None
    ) -> Outcome:
        self._not_before.pop(row.id, None)
        record = OutcomeRecord(status.value, self.clock.now(), error=reason)
        if (
            change_status_recorded(
                self.store, row, status, record, error_message=reason, attempts=attempts
            )
            is None
        ):
            return "unchanged"
        outcomes: dict[Status, Outcome] = {Status.FAILED: "failed", Status.CANCELLED: "cancelled"}
        outcome = outcomes.get(status, "skipped")
        metrics.ROWS.labels(outcome, row.sequence or "none").inc()
        log.info(f"row_{outcome}", row_id=row.id, sequence=row.sequence, reason=reason)
        return outcome

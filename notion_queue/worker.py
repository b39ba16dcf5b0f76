"""The worker cycle: find due rows, render, send, mark each sent, failed or skipped.

Safe to kill at any moment. A row is marked sent only after the mailer accepted it; a worker
killed in between sends again with the same idempotency key, and the mailer answers with the
first message instead of sending a second.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from notion_queue import metrics
from notion_queue.addresses import address_problem
from notion_queue.clock import Clock
from notion_queue.errors import (
    AccountError,
    MaybeWritten,
    PermanentError,
    RateLimited,
    RetryableError,
)
from notion_queue.event_fields import FieldSpec, safe_url_fields, url_field_names, with_fallbacks
from notion_queue.link_guard import check_links, link_targets
from notion_queue.logs import get_logger
from notion_queue.mail.base import Mailer, OutgoingEmail
from notion_queue.models import QueueRow, RowUpdate, Status, utc_text
from notion_queue.pacing import Backoff
from notion_queue.private_files import private_file
from notion_queue.render import RenderedEmail, render
from notion_queue.store.base import QueueStore, RowNotFound
from notion_queue.templates import TemplateSource
from notion_queue.transitions import change_status
from notion_queue.unsubscribe import UnsubscribeTokens

log = get_logger("notion_queue.worker")

Outcome = Literal["sent", "failed", "skipped", "cancelled", "retry", "unchanged"]
# A row is sent with data at most this old, else it is re-read first (a marketer's pause or edit
# wins). Batches are sized so that a batch is sent within it at the mail rate.
STALE_AFTER_SECONDS = 10.0
SUPPRESSED_MAX_AGE_SECONDS = 60.0
LEASE_TTL_SECONDS = 900.0  # a worker that stops renewing loses the queue after 15 minutes
RATE_LIMIT_WAITS_PER_ROW = 5
WAKE_MARGIN_SECONDS = 0.01
ACCOUNT_PROBE_SECONDS = 60.0  # while an account error pauses sending, try again this often


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


def batch_size_for(mail_rate: float | None) -> int:
    """Rows per fresh query: as many as the mailer sends in STALE_AFTER_SECONDS (100 at most,
    Notion's page size, less the one row that tells whether more are due)."""
    if mail_rate is None:
        return 99
    return max(1, min(99, int(mail_rate * STALE_AFTER_SECONDS)))


@dataclass
class CycleSummary:
    """What one cycle did, by outcome; `account_error` says why sending stopped early."""

    outcomes: dict[Outcome, int] = field(default_factory=dict)
    account_error: str | None = None
    next_due: datetime | None = None

    def add(self, outcome: Outcome) -> None:
        if outcome != "unchanged":
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def __getitem__(self, outcome: Outcome) -> int:
        return self.outcomes.get(outcome, 0)

    @property
    def handled(self) -> int:
        return sum(self.outcomes.values())


class Worker:
    def __init__(
        self,
        store: QueueStore,
        mailer: Mailer,
        templates: TemplateSource,
        clock: Clock,
        config: WorkerConfig,
        *,
        unsubscribe: UnsubscribeTokens | None = None,
        backoff: Backoff | None = None,
        status_file: Path | None = None,
    ) -> None:
        self.store = store
        self.mailer = mailer
        self.templates = templates
        self.clock = clock
        self.config = config
        self.unsubscribe = unsubscribe
        self.backoff = backoff or Backoff(base=30, cap=1800)
        self.status_file = status_file
        self.lease_holder: str | None = None
        self.stop_event = threading.Event()
        # Waiting for an unreachable store: capped, and cut short by stop() (SIGTERM).
        self.store_backoff = Backoff(base=1, cap=60)
        self.pause: Callable[[float], object] = self.stop_event.wait
        self._lease_renew_at: float | None = None
        self._not_before: dict[str, datetime] = {}
        self._suppressed: set[str] | None = None
        self._suppressed_at = 0.0
        self._suppressed_lock = threading.Lock()

    def suppressed(self) -> set[str]:
        """Unsubscribed or suppressed addresses, read when a row is about to be sent and the
        last read is older than SUPPRESSED_MAX_AGE_SECONDS (an idle poll costs no extra
        request). Unsubscribe links and bounces cancel the rows themselves at once; this list
        is for boxes a marketer ticks by hand."""
        with self._suppressed_lock:
            now = self.clock.monotonic()
            stale = now - self._suppressed_at > SUPPRESSED_MAX_AGE_SECONDS
            if self._suppressed is None or stale:
                self._suppressed = {e.strip().lower() for e in self.store.unsubscribed_emails()}
                self._suppressed_at = now
            return self._suppressed

    # the cycle

    def run_once(self) -> CycleSummary:
        """One poll: send every due row (up to `concurrency` at once, paced by the mailer and
        the store), and note when the next known row falls due.

        Rows are taken a small batch at a time, each batch from a fresh query, so the data a
        row is sent with is seconds old: a marketer's pause or edit wins without a re-read of
        every row (re-reads would cost a Notion request per email)."""
        summary = CycleSummary()
        now = self.clock.now()
        horizon = now + timedelta(seconds=self.config.poll_interval)
        handled: set[str] = set()
        pool = ThreadPoolExecutor(self.config.concurrency) if self.config.concurrency > 1 else None
        try:
            more = True
            while more and not self.stop_event.is_set():
                batch, more = self._next_batch(horizon, now, handled, summary)
                if not batch:
                    break
                fetched_at = self.clock.monotonic()
                handled.update(row.id for row in batch)
                if pool is None:
                    for row in batch:
                        if self.stop_event.is_set():
                            break
                        summary.add(self.process(row, fetched_at))
                else:
                    futures = [pool.submit(self.process, row, fetched_at) for row in batch]
                    wait(futures)
                    for future in futures:
                        summary.add(future.result())  # an AccountError ends the cycle here
        except AccountError as exc:
            summary.account_error = str(exc)
            metrics.SENDING_PAUSED.set(1)
            log.error("account_error", reason=str(exc), action="sending paused until it works")
        except RetryableError as exc:
            log.warning("cycle_interrupted", reason=str(exc))
        else:
            metrics.SENDING_PAUSED.set(0)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)  # the rows in hand are finished, whatever happened
        return summary

    def _next_batch(
        self, horizon: datetime, now: datetime, handled: set[str], summary: CycleSummary
    ) -> tuple[list[QueueRow], bool]:
        """Up to `batch_size` due rows not yet handled in this cycle, from one fresh query, and
        whether more may be due after them. The query asks for one row more than the batch and
        covers the coming interval too, so a short page or a row not yet due says "nothing more
        now" (no extra query to find out) and tells the worker when to wake next."""
        batch: list[QueueRow] = []
        for row in self.store.due_rows(horizon, page_size=self.config.batch_size + 1):
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

    def keep_lease(self) -> str | None:
        """Claim or renew the queue's lease (one request every LEASE_TTL_SECONDS / 3). Answers
        None while this worker holds it, else the worker that does."""
        if self.lease_holder is None:
            return None
        now = self.clock.monotonic()
        if self._lease_renew_at is not None and now < self._lease_renew_at:
            return None
        other = self.store.claim_lease(self.lease_holder, self.clock.now(), LEASE_TTL_SECONDS)
        if other is None:
            self._lease_renew_at = now + LEASE_TTL_SECONDS / 3
        return other

    def hold_queue(self, *, wait: bool = True) -> str | None:
        """keep_lease, waiting out a store that cannot be reached (Notion down, 5xx, 429,
        timeouts) with capped back-off, saying so in the status file and the logs. Answers as
        keep_lease does (None also when stopped while waiting). A store that refuses us at start
        (bad token, database not found) raises: waiting would not mend it. A token refused
        later pauses sending and is probed every ACCOUNT_PROBE_SECONDS."""
        attempts = 0
        while True:
            try:
                other = self.keep_lease()
            except RetryableError as exc:
                if not wait:
                    raise
                attempts += 1
                delay = self.store_backoff.delay(attempts)
                log.warning(
                    "store_unreachable",
                    reason=str(exc),
                    attempts=attempts,
                    retry_in=round(delay, 1),
                    action="waiting for the store before sending",
                )
                self.write_waiting_status(str(exc))
                self.pause(delay)
                if self.stop_event.is_set():
                    return None
                continue
            except AccountError as exc:
                if self._lease_renew_at is None or not wait:
                    raise  # at start: a setting to fix, not something to wait out
                # Mid-run (a token revoked): pause sending and probe, as a cycle would.
                log.error("account_error", reason=str(exc), action="sending paused until it works")
                metrics.SENDING_PAUSED.set(1)
                self.write_status(CycleSummary(account_error=str(exc)))
                self.pause(ACCOUNT_PROBE_SECONDS)
                if self.stop_event.is_set():
                    return None
                continue
            if attempts:
                log.info("store_reached", after_attempts=attempts)
            return other

    def release_lease(self) -> None:
        if self.lease_holder is not None and self._lease_renew_at is not None:
            self.store.release_lease(self.lease_holder)
            self._lease_renew_at = None

    def run_forever(self) -> None:
        """Poll every POLL_INTERVAL_SECONDS (sooner when a row falls due before that) until
        stop() (SIGTERM/SIGINT); the rows in hand are finished before the worker exits."""
        log.info("worker_started", poll_interval=self.config.poll_interval)
        while not self.stop_event.is_set():
            other = self.hold_queue()
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
                wait_for = max(wait_for, ACCOUNT_PROBE_SECONDS)  # the probe: try again, gently
            elif summary.next_due is not None:
                until_due = (summary.next_due - self.clock.now()).total_seconds()
                # A hair after the row falls due, so the wake-up query finds it due.
                wait_for = min(wait_for, max(0.0, until_due) + WAKE_MARGIN_SECONDS)
            self.stop_event.wait(wait_for)
        log.info("worker_stopped")

    def write_status(self, summary: CycleSummary) -> None:
        """What the server's /readyz shows of the worker: whether sending is paused, and why."""
        if self.status_file is None:
            return
        status = {
            "sending_paused": summary.account_error is not None,
            "reason": summary.account_error or "",
            "at": self.clock.now().isoformat(),
            "last_cycle": summary.outcomes,
        }
        self._write_status_file(status)

    def _write_status_file(self, status: dict[str, Any]) -> None:
        if self.status_file is None:
            return
        tmp = self.status_file.with_suffix(".tmp")
        private_file(tmp).write_text(json.dumps(status))
        tmp.replace(self.status_file)

    def write_waiting_status(self, reason: str) -> None:
        """The worker cannot reach the store: nothing is sent until it can."""
        self._write_status_file(
            {
                "sending_paused": False,
                "waiting_for_store": True,
                "reason": reason,
                "at": self.clock.now().isoformat(),
                "last_cycle": {},
            }
        )

    def stop(self) -> None:
        self.stop_event.set()

    # one row

    def process(self, row: QueueRow, fetched_at: float) -> Outcome:
        try:
            return self._process(row, fetched_at)
        except AccountError:
            raise
        except RetryableError as exc:
            log.warning("row_deferred", row_id=row.id, sequence=row.sequence, reason=str(exc))
            return "retry"

    def _process(self, row: QueueRow, fetched_at: float) -> Outcome:
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
        if row.status is not Status.QUEUED:
            if row.status is None:
                return self._fail(
                    row,
                    f"Status {row.status_text!r} is not a status; set it to queued, paused or "
                    "cancelled",
                )
            return "unchanged"
        if row.scheduled_time is None:
            return self._fail(row, "Scheduled Time is empty; set it and set Status to queued")
        if row.scheduled_time > now:
            return "unchanged"
        if row.expires_at is not None and now >= row.expires_at:
            return self._finish(
                row,
                Status.SKIPPED,
                f"expired: its moment passed at {utc_text(row.expires_at)} before it could be sent",
            )
        problem = self._row_problem(row)
        if problem:
            return self._fail(row, problem)
        if row.email.lower() in self.suppressed():
            return self._finish(
                row, Status.CANCELLED, "cancelled: the address is unsubscribed or suppressed"
            )
        try:
            template = self.templates.get(row.template_id)
            check_links(template, self._link_targets)
            rendered = render(template, self._variables(row))
        except PermanentError as exc:
            return self._fail(row, str(exc))
        return self._send(row, self._outgoing(row, rendered))

    def _row_problem(self, row: QueueRow) -> str | None:
        if not row.email:
            return "Email Address is empty; fill it in and set Status to queued"
        why = address_problem(row.email)  # the rule webhooks follow (notion_queue.addresses)
        if why is not None:
            return (
                f"Email Address {row.email!r} is not a valid address{f' ({why})' if why else ''};"
                " fix it and set Status to queued"
            )
        if not row.template_id:
            return "Template ID is empty; fill it in and set Status to queued"
        try:
            row.variables()
        except ValueError as exc:
            return f"Variables is not a valid JSON object ({exc}); fix it and set Status to queued"
        return None

    @property
    def _link_targets(self) -> frozenset[str]:
        return link_targets(
            self.config.campaign_variables, url_field_names(self.config.event_fields)
        )

    def _variables(self, row: QueueRow) -> dict[str, Any]:
        fields = self.config.event_fields
        # A url a row carries is checked again: rows written before the check, or edited since.
        variables = safe_url_fields(row.variables(), fields)
        # The row's First Name is what a marketer sees and may edit: it wins over the captured one.
        variables.pop("first_name", None)
        if row.first_name:
            variables["first_name"] = row.first_name
        variables = with_fallbacks(variables, fields)
        # The business's own values come last: no event (nor an old row) can change them.
        variables.update(self.config.campaign_variables)
        variables["email"] = row.email
        if self.unsubscribe is not None:
            variables["unsubscribe_url"] = self.unsubscribe.url(
                self.config.public_base_url, row.email
            )
        return variables

    def _outgoing(self, row: QueueRow, rendered: RenderedEmail) -> OutgoingEmail:
        headers: dict[str, str] = {}
        if self.unsubscribe is not None:
            headers["List-Unsubscribe"] = (
                f"<{self.unsubscribe.url(self.config.public_base_url, row.email)}>"
            )
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        digest = hashlib.sha256(
            "\x00".join(
                (row.email, self.config.sender, rendered.subject, rendered.html, rendered.text)
            ).encode()
        ).hexdigest()[:24]
        return OutgoingEmail(
            sender=self.config.sender,
            to=row.email,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            reply_to=self.config.reply_to,
            idempotency_key=f"notion-queue/{row.id}/{digest}",
            headers=headers,
            tags={"sequence": _tag(row.sequence), "template": _tag(row.template_id)},
        )

    def _send(self, row: QueueRow, email: OutgoingEmail) -> Outcome:
        attempts = row.attempts + 1
        for _ in range(RATE_LIMIT_WAITS_PER_ROW):
            try:
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
        self._not_before.pop(row.id, None)
        now = self.clock.now()
        marked = change_status(
            self.store,
            row,
            Status.SENT,
            sent_at=now,
            resend_email_id=result.message_id,
            error_message="",
            attempts=attempts,
        )
        if marked is None:
            return "unchanged"
        lateness = (now - row.scheduled_time).total_seconds() if row.scheduled_time else None
        metrics.ROWS.labels("sent", row.sequence or "none").inc()
        self.store.record_outcome(
            row, "sent", now, message_id=result.message_id, lateness_seconds=lateness
        )
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
        if change_status(self.store, row, status, error_message=reason, attempts=attempts) is None:
            return "unchanged"
        outcomes: dict[Status, Outcome] = {Status.FAILED: "failed", Status.CANCELLED: "cancelled"}
        outcome = outcomes.get(status, "skipped")
        metrics.ROWS.labels(outcome, row.sequence or "none").inc()
        self.store.record_outcome(row, status.value, self.clock.now(), error=reason)
        log.info(f"row_{outcome}", row_id=row.id, sequence=row.sequence, reason=reason)
        return outcome


def _tag(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", value)[:256] or "none"

"""The Resend batches a PostgreSQL queue's workers have started and not yet marked.

Several workers on several hosts share the queue, so a started batch lives in the database
(`pending_batches`), not in one host's STATE_DIR:

- `record` writes the batch and sets its key on its rows in one transaction, before the request
  goes out, and only if every row is still queued, still claimed by this worker and in no other
  batch. From then on `claim_due` passes its rows over, whoever's claims lapse.
- The recording worker holds the batch until `held_until` and renews the hold before every send
  attempt (`hold`). A worker that died stops renewing: once the hold lapses, `pending` hands the
  batch to exactly one other worker (FOR UPDATE SKIP LOCKED), which sends exactly that batch
  again under the same key, so Resend answers with the first ids and sends nothing twice.
- `done` deletes the batch and releases its rows in one transaction.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

from psycopg.types.json import Json

from notion_queue.batch_journal import PendingBatch
from notion_queue.clock import Clock
from notion_queue.errors import RetryableError
from notion_queue.logs import get_logger
from notion_queue.mail.base import OutgoingEmail
from notion_queue.mail.batch import Batch
from notion_queue.models import Status
from notion_queue.store.postgres import PostgresStore

log = get_logger(__name__)


class BatchNotStarted(RetryableError):
    """A row of the batch is no longer this worker's to send: nothing was recorded."""


class PostgresBatchJournal:
    """The pending batches of one worker (`holder`, the id it claims rows with)."""

    def __init__(
        self, store: PostgresStore, clock: Clock, holder: str, hold_seconds: float
    ) -> None:
        self.store = store
        self.clock = clock
        self.holder = holder
        self.hold_seconds = hold_seconds

    def _until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.hold_seconds)

    def record(self, batch: Batch) -> None:
        now = self.clock.now()
        rows = [
            {"row_id": row_id, "email": asdict(email)}
            for row_id, email in zip(batch.row_ids, batch.emails, strict=True)
        ]
        with self.store.transaction() as conn:
            marked = conn.execute(
                "UPDATE email_queue SET batch_key = %(key)s WHERE id = ANY(%(ids)s)"
                " AND status = %(queued)s AND claimed_by = %(holder)s AND batch_key IS NULL"
                " RETURNING id",
                {
                    "key": batch.idempotency_key,
                    "ids": list(batch.row_ids),
                    "queued": Status.QUEUED.value,
                    "holder": self.holder,
                },
            ).fetchall()
            if len(marked) != len(batch.row_ids):
                # Raising rolls the transaction back: no row keeps the key.
                raise BatchNotStarted(
                    f"{len(batch.row_ids) - len(marked)} of the batch's {len(batch.row_ids)}"
                    " rows changed or were claimed by another worker since this one took them"
                )
            conn.execute(
                "INSERT INTO pending_batches"
                " (idempotency_key, rows, held_by, held_until, created_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                (batch.idempotency_key, Json(rows), self.holder, self._until(now), now),
            )

    def pending(self) -> list[PendingBatch]:
        """The batches this worker holds already (one that failed for now), and those whose
        holder let the hold lapse, now held by this worker; oldest first."""
        now = self.clock.now()
        found = self.store._query(
            "WITH taken AS ("
            " SELECT idempotency_key, held_by AS previous FROM pending_batches"
            " WHERE held_until <= %(now)s OR held_by = %(holder)s"
            " ORDER BY created_at FOR UPDATE SKIP LOCKED)"
            " UPDATE pending_batches AS p SET held_by = %(holder)s, held_until = %(until)s"
            " FROM taken WHERE p.idempotency_key = taken.idempotency_key"
            " RETURNING p.idempotency_key, p.rows, p.created_at, taken.previous",
            {"now": now, "holder": self.holder, "until": self._until(now)},
        )
        batches = []
        for record in sorted(found, key=lambda r: r["created_at"]):
            batch = Batch.of(
                (item["row_id"], OutgoingEmail(**item["email"])) for item in record["rows"]
            )
            if batch.idempotency_key != record["idempotency_key"]:
                raise ValueError(
                    f"pending batch {record['idempotency_key']}: its rows do not match its key"
                )
            if record["previous"] != self.holder:
                log.info(
                    "batch_taken_over",
                    key=batch.idempotency_key,
                    rows=len(batch.row_ids),
                    previous_holder=record["previous"],
                )
            batches.append(PendingBatch(batch, record["created_at"]))
        return batches

    def hold(self, batch: Batch) -> bool:
        now = self.clock.now()
        found = self.store._query(
            "UPDATE pending_batches SET held_until = %s"
            " WHERE idempotency_key = %s AND held_by = %s RETURNING idempotency_key",
            (self._until(now), batch.idempotency_key, self.holder),
        )
        return bool(found)

    def done(self, batch: Batch) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "DELETE FROM pending_batches WHERE idempotency_key = %s", (batch.idempotency_key,)
            )
            conn.execute(
                "UPDATE email_queue SET batch_key = NULL WHERE batch_key = %s",
                (batch.idempotency_key,),
            )

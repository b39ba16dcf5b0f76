"""The batches a worker has started to send and not yet marked: never regrouped.

A batch is written here (durably) before its request goes out, and removed once its rows are
marked sent. A worker killed in between finds it here at its next cycle and sends exactly that
batch again (the same emails, the same key), so Resend answers with the first ids instead of
sending again; the rows in it are sent no other way while it is here.

`FileBatchJournal` keeps one JSON file per batch in STATE_DIR/batches: right for a store that
one worker on one host serves (SQLite). A store shared by workers on several hosts keeps its
pending batches itself, with its claims (`store/postgres_batches.py`): there a batch is held by
one worker at a time, and one whose holder died is taken over when its hold lapses.

Resend keeps a key for 24 hours: a batch recorded longer ago than `KEY_WINDOW` is never sent
again (the worker fails its rows, saying why), since Resend may have forgotten the first request.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from notion_queue.clock import Clock
from notion_queue.mail.base import OutgoingEmail
from notion_queue.mail.batch import Batch
from notion_queue.private_files import private_dir

# Resend remembers an Idempotency-Key for 24 hours; an hour's margin for clocks and the send.
KEY_WINDOW = timedelta(hours=23)


@dataclass(frozen=True)
class PendingBatch:
    """A batch recorded and not done, and when it was recorded (None: not known)."""

    batch: Batch
    recorded_at: datetime | None


class BatchJournal(Protocol):
    def record(self, batch: Batch) -> None:
        """Keep `batch` (durably) until `done`; called before its request goes out. May raise
        RetryableError: nothing was kept, and the batch must not be sent."""
        ...

    def pending(self) -> list[PendingBatch]:
        """Batches recorded and not done that this worker is to send again, oldest first."""
        ...

    def hold(self, batch: Batch) -> bool:
        """Renew this worker's hold on `batch` before an attempt to send it; False: another
        worker took it over (this one leaves it alone)."""
        ...

    def done(self, batch: Batch) -> None: ...


class FileBatchJournal:
    """One worker on one host (it holds the queue's lease): every pending batch is its own."""

    def __init__(self, folder: Path, clock: Clock | None = None) -> None:
        self.folder = private_dir(folder)
        self.clock = clock  # None: when a batch was recorded is not kept

    def _path(self, batch: Batch) -> Path:
        return self.folder / f"{hashlib.sha256(batch.idempotency_key.encode()).hexdigest()}.json"

    def record(self, batch: Batch) -> None:
        recorded_at = self.clock.now().isoformat() if self.clock is not None else None
        data = json.dumps(
            {
                "idempotency_key": batch.idempotency_key,
                "recorded_at": recorded_at,
                "rows": [
                    {"row_id": row_id, "email": asdict(email)}
                    for row_id, email in zip(batch.row_ids, batch.emails, strict=True)
                ],
            }
        ).encode()
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path(batch))
            _fsync_dir(self.folder)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def pending(self) -> list[PendingBatch]:
        found = []
        for path in self.folder.glob("*.json"):
            with contextlib.suppress(FileNotFoundError):
                data = json.loads(path.read_text())
                emails = [(item["row_id"], OutgoingEmail(**item["email"])) for item in data["rows"]]
                batch = Batch.of(emails)
                if batch.idempotency_key != data["idempotency_key"]:
                    raise ValueError(f"{path}: the batch does not match its key")
                recorded = data.get("recorded_at")
                pending = PendingBatch(
                    batch, datetime.fromisoformat(recorded) if recorded else None
                )
                found.append((path.stat().st_mtime_ns, path.name, pending))
        return [pending for _, _, pending in sorted(found, key=lambda item: item[:2])]

    def hold(self, batch: Batch) -> bool:
        return True

    def done(self, batch: Batch) -> None:
        self._path(batch).unlink(missing_ok=True)
        _fsync_dir(self.folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

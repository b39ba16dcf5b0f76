"""The batches a worker has started to send and not yet marked: never regrouped.

A batch is written here (durably) before its request goes out, and removed once its rows are
marked sent. A worker killed in between finds it here at its next cycle and sends exactly that
batch again (the same emails, the same key), so Resend answers with the first ids instead of
sending again; the rows in it are sent no other way while it is here.

`FileBatchJournal` keeps one JSON file per batch in STATE_DIR/batches: right for a store that
one worker on one host serves (SQLite). A store shared by workers on several hosts keeps its
pending batches itself, with its claims (any object with these three methods will do).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

from notion_queue.mail.base import OutgoingEmail
from notion_queue.mail.batch import Batch
from notion_queue.private_files import private_dir


class BatchJournal(Protocol):
    def record(self, batch: Batch) -> None:
        """Keep `batch` (durably) until `done`; called before its request goes out."""
        ...

    def pending(self) -> list[Batch]:
        """Batches recorded and not done, oldest first."""
        ...

    def done(self, batch: Batch) -> None: ...


class FileBatchJournal:
    def __init__(self, folder: Path) -> None:
        self.folder = private_dir(folder)

    def _path(self, batch: Batch) -> Path:
        return self.folder / f"{hashlib.sha256(batch.idempotency_key.encode()).hexdigest()}.json"

    def record(self, batch: Batch) -> None:
        data = json.dumps(
            {
                "idempotency_key": batch.idempotency_key,
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

    def pending(self) -> list[Batch]:
        found = []
        for path in self.folder.glob("*.json"):
            with contextlib.suppress(FileNotFoundError):
                data = json.loads(path.read_text())
                emails = [(item["row_id"], OutgoingEmail(**item["email"])) for item in data["rows"]]
                batch = Batch.of(emails)
                if batch.idempotency_key != data["idempotency_key"]:
                    raise ValueError(f"{path}: the batch does not match its key")
                found.append((path.stat().st_mtime_ns, path.name, batch))
        return [batch for _, _, batch in sorted(found, key=lambda item: item[:2])]

    def done(self, batch: Batch) -> None:
        self._path(batch).unlink(missing_ok=True)
        _fsync_dir(self.folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

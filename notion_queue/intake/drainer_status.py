"""The drainer process's status file: how the server's /readyz knows what its drainer knows.

The drainer process (`drainer_child.py`) writes it when its state changes and at least once a
second; the server (`drainer_process.py`) reads it. Its name, its fields, the write and the
read live here and nowhere else:

    {"pid": int, "store_problem": str, "last_error": str, "journal_error": str,
     "idle_seconds": float, "at": iso time}
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from notion_queue.intake.drainer import DrainerState
from notion_queue.json_files import read_json_object, replace_json

FILE_NAME = "drainer-status.json"  # in STATE_DIR
REFRESH_SECONDS = 1.0  # rewritten this often even when nothing changed (idle_seconds moves on)


def drainer_status_path(state_dir: Path) -> Path:
    return Path(state_dir) / FILE_NAME


class DrainerStatusFile:
    """The drainer process's end: `write(state)` whenever it likes; the file is rewritten only
    when a problem appeared, changed or went, or REFRESH_SECONDS after the last write."""

    def __init__(self, state_dir: Path, pid: int) -> None:
        self.path = drainer_status_path(state_dir)
        self.pid = pid
        self._written: tuple[str, str, str] | None = None
        self._written_at: datetime | None = None

    def write(self, state: DrainerState) -> None:
        problems = (state.store_problem, state.last_error, state.journal_error)
        fresh = (
            self._written_at is not None
            and (state.at - self._written_at).total_seconds() < REFRESH_SECONDS
        )
        if problems == self._written and fresh:
            return
        record: dict[str, Any] = {"pid": self.pid, **asdict(state)}
        record["at"] = state.at.isoformat()
        replace_json(self.path, record)
        self._written, self._written_at = problems, state.at


def read_drainer_status(state_dir: Path, pid: int) -> DrainerState | None:
    """What the drainer process `pid` last wrote; None when it wrote nothing yet (a file left by
    an earlier process is not its word)."""
    record = read_json_object(drainer_status_path(state_dir))
    if record is None or record.get("pid") != pid:
        return None
    try:
        return DrainerState(
            store_problem=str(record["store_problem"]),
            last_error=str(record["last_error"]),
            journal_error=str(record["journal_error"]),
            idle_seconds=float(record["idle_seconds"]),
            at=datetime.fromisoformat(record["at"]),
        )
    except (ValueError, KeyError, TypeError):
        return None

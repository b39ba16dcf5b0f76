"""The worker's status file: the one thing the server knows of the worker (same host).

The worker writes it after every cycle, while it waits for the store, and while an account error
pauses sending; the server reads it for /readyz. Its name, its fields, the write and the read
live here and nowhere else:

    {"sending_paused": bool, "reason": str, "at": iso time, "last_cycle": {outcome: count}}
    while waiting for the store, also "waiting_for_store": true
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from notion_queue.clock import Clock
from notion_queue.json_files import read_json_object, replace_json

FILE_NAME = "worker-status.json"  # in STATE_DIR
OutcomeName = TypeVar("OutcomeName", bound=str)


def status_path(state_dir: Path) -> Path:
    return Path(state_dir) / FILE_NAME


class StatusFile:
    """Where the worker tells /readyz how it is; `path=None` (tests, a library use) writes
    nothing."""

    def __init__(self, path: Path | None, clock: Clock) -> None:
        self.path = path
        self.clock = clock

    def after_cycle(self, outcomes: Mapping[OutcomeName, int], account_error: str | None) -> None:
        """What the last cycle did; sending is paused while an account error stands."""
        self._write(
            {
                "sending_paused": account_error is not None,
                "reason": account_error or "",
                "at": self.clock.now().isoformat(),
                "last_cycle": dict(outcomes),
            }
        )

    def waiting_for_store(self, reason: str) -> None:
        """The worker cannot reach the store: nothing is sent until it can."""
        self._write(
            {
                "sending_paused": False,
                "waiting_for_store": True,
                "reason": reason,
                "at": self.clock.now().isoformat(),
                "last_cycle": {},
            }
        )

    def _write(self, status: dict[str, Any]) -> None:
        if self.path is None:
            return
        replace_json(self.path, status)


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """The worker's last word, or None when there is none (no worker on this host yet)."""
    return read_json_object(status_path(state_dir))


def is_waiting_for_store(status: Mapping[str, Any] | None) -> bool:
    return bool(status and status.get("waiting_for_store"))


def is_sending_paused(status: Mapping[str, Any] | None) -> bool:
    return bool(status and status.get("sending_paused"))

"""What the three soaks (Notion, embedded, PostgreSQL) share: the verdict's shape, and the
environment their real server and workers start with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .processes import ProcessGroup

# Production (MAIL_BACKEND=resend) wants a public https base URL and signed or rate-limited
# website endpoints; a soak's load comes from one client, so no limit.
PRODUCTION_ENV = {
    "PUBLIC_BASE_URL": "https://funnel.businessx.com",
    "ALLOW_UNSIGNED_WEBHOOKS": "true",
    "UNSIGNED_REQUESTS_PER_MINUTE_PER_CLIENT": "1000000",
    "UNSIGNED_REQUESTS_PER_HOUR_PER_ADDRESS": "1000000",
}


@dataclass
class SoakVerdict:
    """A soak's figures (the subclass's fields) and what went wrong; ok when nothing did."""

    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok}, indent=2)


def soak_env(workdir: Path, port: int, sequences: Path, **settings: str) -> dict[str, str]:
    """This process's environment without any NOTION_/RESEND_ setting of the machine's, the
    soak's catalog (every step due at once) in testing mode, 1 s polls, JSON logs, and
    `settings` over all that."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTION_", "RESEND_"))}
    env.update(
        STATE_DIR=str(workdir / "state"),
        SEQUENCES_FILE=str(sequences),
        TESTING_MODE="true",
        PORT=str(port),
        POLL_INTERVAL_SECONDS="1",
        UNSUBSCRIBE_SECRET="soak-unsubscribe-secret",
        LOG_FORMAT="json",
    )
    env.update(settings)
    return env


def wait_while_changing(
    count: Callable[[], int], stall_seconds: float, deadline: float, every: float
) -> None:
    """Until `count()` (rows still queued) is 0, or has not changed for `stall_seconds` (the
    worker only waits on deferred rows' back-off), or the deadline has passed."""
    last, last_change = count(), time.monotonic()
    while last and time.monotonic() - last_change < stall_seconds:
        time.sleep(every)
        if (now := count()) != last:
            last, last_change = now, time.monotonic()
        if time.monotonic() > deadline:
            break


def run_worker_once(procs: ProcessGroup, deadline: float, log_name: str) -> None:
    """`worker.py --once`, stopped with SIGTERM if it is still running at the deadline."""
    once = procs.start("worker.py", "--once", log_name=log_name)
    try:
        once.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        once.send_signal(signal.SIGTERM)
        once.wait(timeout=30)

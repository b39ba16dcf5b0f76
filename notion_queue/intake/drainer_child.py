"""The drainer process: `python -m notion_queue.intake.drainer_child`, started by the server
(`drainer_process.py`), never by hand.

Its stdin is the server's pipe: a byte is a wake-up, end of file is the server gone. It takes
STATE_DIR/drainer.lock before it drains, so that one drainer at a time applies a journal (a
restarted server's new child waits for the old one to finish the event in hand). SIGINT and
SIGTERM are the server's to act on (a terminal's Ctrl-C and systemd signal the whole group):
the child ignores them and ends with the pipe.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from notion_queue.clock import SystemClock
from notion_queue.errors import NotionQueueError
from notion_queue.logs import get_logger
from notion_queue.private_files import private_dir, private_file, private_umask

log = get_logger("notion_queue.drainer")

LOCK_FILE = "drainer.lock"  # in STATE_DIR
STATUS_EVERY_SECONDS = 0.5  # the status file is offered the drainer's state this often
PIPE = 0  # stdin
# Background work: webhooks waiting for their 202 come first when the CPUs are busy.
NICENESS = 10
# Once woken, the drainer waits this long for more events: a busy intake is then applied a
# batch at a time (one journal commit for the batch), for at most this much more lag.
GATHER_SECONDS = 0.05


def pipe_says(timeout: float) -> bool | None:
    """Wait up to `timeout` for the server: True for a wake-up (all pending ones are read),
    None for end of file (the server is gone), False for nothing."""
    ready, _, _ = select.select([PIPE], [], [], max(0.0, timeout))
    if not ready:
        return False
    return True if os.read(PIPE, 65536) else None


@contextlib.contextmanager
def drainer_lock(state_dir: Path) -> Iterator[bool]:
    """Hold STATE_DIR/drainer.lock; yields False when the server went away while waiting."""
    private_dir(state_dir)
    with private_file(Path(state_dir) / LOCK_FILE).open("a") as handle:
        said = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not said:
                    log.info("drainer_waiting", reason="another drainer holds the journal")
                    said = True
                if pipe_says(0.2) is None:
                    yield False
                    return
        yield True  # the kernel releases the lock when this process dies, even by SIGKILL


def main() -> int:
    from notion_queue.entry import settings_or_exit
    from notion_queue.intake.drainer import Drainer
    from notion_queue.intake.drainer_status import DrainerStatusFile
    from notion_queue.intake.processor import IntakeProcessor
    from notion_queue.wakeup import Waker, WakingStore
    from notion_queue.wiring import open_intake, store_connector

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    private_umask()
    settings = settings_or_exit()
    try:
        os.nice(NICENESS)
    except OSError as exc:  # deploy/'s unit forbids @resources system calls, setpriority with them
        log.info("drainer_priority_unchanged", reason=str(exc))
    clock = SystemClock()
    with drainer_lock(settings.state_dir) as locked:
        if not locked:
            return 0
        try:
            catalog, store, journal = open_intake(settings, clock)
        except NotionQueueError as exc:
            print(f"notion-queue drainer: {exc}", file=sys.stderr)
            return 2
        # A row due before the worker's next poll wakes the worker on this host (wakeup.py).
        waker = Waker(settings.state_dir, clock, settings.poll_interval_seconds)
        drainer = Drainer(
            journal,
            IntakeProcessor(
                WakingStore(store, waker),
                catalog,
                clock,
                testing_mode=settings.testing_mode,
                default_zone=settings.default_zone,
                max_emails_per_day=settings.max_emails_per_day,
            ),
            clock,
            gather_seconds=GATHER_SECONDS,
            connect=store_connector(store, catalog),
        )
        status = DrainerStatusFile(settings.state_dir, os.getpid())
        drainer.start()
        while (said := pipe_says(STATUS_EVERY_SECONDS)) is not None:
            if said:
                drainer.notify()
            status.write(drainer.state())
        drainer.stop()
        store.close()
        journal.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

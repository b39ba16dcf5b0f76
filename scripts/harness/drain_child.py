"""One embedded measurement in a process of its own, so its CPU and peak RSS are its alone.

    python scripts/harness/drain_child.py drain ROWS DIR   the worker drains ROWS due rows
    python scripts/harness/drain_child.py fsync FILES DIR  the machine's limit: a minimal loop
                                                           writing the same .eml files durably

Each writes one JSON object to DIR/result.json (stdout carries the product's own json logs). The drain seeds a SQLite queue (1 000 rows a transaction), then
times one worker cycle (wiring's worker: outbox mailer, packaged templates) in CPU and wall
seconds; the fsync loop does what the outbox does per message (write, fsync, link, fsync the
folder) and nothing else.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from notion_queue.clock import SystemClock
from notion_queue.logs import configure_logging
from notion_queue.mail.base import OutgoingEmail
from notion_queue.mail.outbox import build_message
from notion_queue.models import NewRow, Status
from notion_queue.settings import Settings
from notion_queue.store.sqlite import SqliteStore
from notion_queue.wiring import build_mailer, build_worker

CHUNK = 1000


def _peak_rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def drain(rows: int, folder: Path) -> dict[str, Any]:
    settings = Settings(
        sqlite_path=folder / "queue.sqlite3",
        outbox_dir=folder / "outbox",
        state_dir=folder / "state",
    )
    store = SqliteStore(settings.sqlite_path)
    due = datetime.now(UTC) - timedelta(hours=1)
    started = time.monotonic()
    for first in range(0, rows, CHUNK):
        store.add_rows(
            [
                NewRow(
                    email=f"lead{n}@example.com",
                    first_name=f"Lead{n}",
                    sequence="lead_nurture",
                    email_number=1 + n % 5,
                    template_id=f"lead_nurture_email_{1 + n % 5}",
                    scheduled_time=due + timedelta(milliseconds=n),
                    dedupe_key=f"bench:drain:{n}",
                    variables={"business_name": f"Salon {n}"},
                    status=Status.QUEUED,
                )
                for n in range(first, min(rows, first + CHUNK))
            ]
        )
    seeded = time.monotonic() - started
    clock = SystemClock()
    mailer = build_mailer(settings, clock)
    worker = build_worker(settings, clock, store, mailer)
    rss_before = _peak_rss_kib()
    cpu0, wall0 = time.process_time(), time.monotonic()
    summary = worker.run_once()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    store.close()
    return {
        "rows": rows,
        "sent": summary["sent"],
        "seed_seconds": round(seeded, 2),
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "cpu_ms_per_email": round(cpu / max(1, rows) * 1000, 3),
        "emails_per_second": round(rows / wall, 1) if wall else None,
        "peak_rss_kib_before_drain": rss_before,
        "peak_rss_kib": _peak_rss_kib(),
    }


def fsync_loop(files: int, folder: Path) -> dict[str, Any]:
    outbox = folder / "fsync-loop"
    outbox.mkdir(parents=True, exist_ok=True)
    email = OutgoingEmail(
        sender="BusinessX <hello@businessx.com>",
        to="lead@example.com",
        subject="Welcome",
        html="<p>" + "Hello, this is a typical email body. " * 60 + "</p>",
        text="Hello, this is a typical email body. " * 60,
        idempotency_key="k",
    )
    data = bytes(build_message(email, message_id="<x@businessx.com>", date="now"))
    started = time.monotonic()
    for n in range(files):
        tmp = outbox / f".tmp-{n}"
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, outbox / f"{n:08d}.eml")
        fd = os.open(outbox, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(fd)
        os.close(fd)
        tmp.unlink()
    wall = time.monotonic() - started
    return {
        "files": files,
        "bytes_per_file": len(data),
        "wall_seconds": round(wall, 2),
        "files_per_second": round(files / wall, 1) if wall else None,
    }


def main(argv: list[str]) -> int:
    what, count, folder = argv[0], int(argv[1]), Path(argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    configure_logging("json", "info")  # as the product logs in production
    result = drain(count, folder) if what == "drain" else fsync_loop(count, folder)
    (folder / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

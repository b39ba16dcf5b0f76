"""The embedded default under kills (`make soak ARGS='--embedded'`; short run in
tests/test_soak_embedded.py): the real server.py and worker.py on a SQLite queue and the outbox
mailer, no fakes at all.

1. Intake: `events` signups (5 emails each, all due at once) are posted to the server; the
   drainer turns them into rows in the SQLite queue before any worker runs.
2. Sending: a worker with SEND_CONCURRENCY=8 sends them to the outbox folder and is SIGKILLed
   `kills` times at random moments while it sends (each kill lands a random few milliseconds
   after a random count of messages has appeared), restarted each time. The last one runs until
   nothing is queued; then `worker.py --once` runs until nothing is queued.
3. Checks: every row exists once and is sent; the outbox holds exactly one message per row: one
   .eml per (recipient, subject), every sent row's message id names one message, and no message
   belongs to no row.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

import httpx

from .processes import free_port, process_group, wait_until
from .soak import ROWS_PER_EVENT, sequences_file
from .soak_common import SoakVerdict, run_worker_once, soak_env, wait_while_changing

__all__ = ["EmbeddedSoakReport", "run_embedded_soak"]

STALL_SECONDS = 30.0  # no faults here: a worker this long without sending is stuck (or starting
# on a loaded machine)
SEND_CONCURRENCY = 8
KILL_JITTER_SECONDS = 0.03  # how long after its threshold count a kill lands, at most


@dataclass
class EmbeddedSoakReport(SoakVerdict):
    mode: str = "embedded"
    events: int = 0  # posted
    accepted: int = 0  # answered 202
    expected_rows: int = 0
    rows: int = 0  # in the SQLite queue
    duplicate_rows: int = 0  # rows beyond the first with the same Dedupe Key
    queued_left: int = 0
    not_sent: int = 0  # rows in any status but sent
    messages: int = 0  # .eml files in the outbox
    duplicate_messages: int = 0  # messages beyond one per row
    rows_without_message: int = 0  # sent rows whose message id names no message (lost)
    stray_temp_files: int = 0  # `.tmp-*` left by a kill mid-write (never read, never counted)
    replayed_sends: int = 0  # rows re-sent after a kill and answered with the first message's id
    kills: int = 0  # SIGKILLs of the worker while it was sending
    worker_runs: int = 0
    send_seconds: float = 0.0  # first worker start to nothing queued
    seconds: float = 0.0


def _count_messages(folder: Path) -> int:
    try:
        return sum(1 for entry in os.scandir(folder) if entry.name.endswith(".eml"))
    except FileNotFoundError:
        return 0


def _queued(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        return int(
            conn.execute("SELECT COUNT(*) FROM email_queue WHERE status = 'queued'").fetchone()[0]
        )


def run_embedded_soak(
    events: int,
    kills: int,
    seed: int,
    workdir: Path,
    *,
    timeout: float = 600.0,
) -> EmbeddedSoakReport:
    """Run the scenario in `workdir` (created if needed) and report the figures; `problems`
    lists every broken invariant (empty: all held)."""
    started = time.monotonic()
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    report = EmbeddedSoakReport(events=events, expected_rows=events * ROWS_PER_EVENT)
    outbox = workdir / "outbox"
    db = workdir / "queue.sqlite3"
    port = free_port()
    env = soak_env(
        workdir,
        port,
        sequences_file(workdir),
        QUEUE_BACKEND="sqlite",
        MAIL_BACKEND="outbox",
        SQLITE_PATH=str(db),
        OUTBOX_DIR=str(outbox),
        SEND_CONCURRENCY=str(SEND_CONCURRENCY),
    )
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}"
    with process_group(workdir, env) as procs, httpx.Client(base_url=url, timeout=30) as http:
        procs.start("server.py", log_name="server.log")
        wait_until(lambda: http.get("/healthz").status_code == 200, 30, "the server")

        # -- 1. intake: every row exists before the first worker starts
        for n in range(events):
            body = {"email": f"lead{n:05d}@example.com", "first_name": f"Lead{n}"}
            response = http.post("/webhook/christmas-signup", json=body)
            if response.status_code == 202 and response.json().get("status") == "accepted":
                report.accepted += 1
            else:
                report.problems.append(f"event {n} answered {response.status_code}")
        wait_until(
            lambda: int(http.get("/readyz").json()["journal_backlog"]) == 0,
            max(1.0, deadline - time.monotonic()),
            "intake to drain",
        )

        # -- 2. sending, with kills at random counts of messages written
        total = report.expected_rows
        thresholds = sorted(rng.randint(1, max(1, int(total * 0.9))) for _ in range(kills))
        send_started = time.monotonic()
        worker = procs.start("worker.py", log_name="worker.log")
        report.worker_runs += 1
        at_start = _count_messages(outbox)
        for threshold in thresholds:
            # A restarted worker must be sending again before it is killed again.
            target = max(threshold, at_start + 1)
            while _count_messages(outbox) < target and worker.poll() is None:
                if _count_messages(outbox) >= total or time.monotonic() > deadline:
                    break
                time.sleep(0.002)
            if _count_messages(outbox) >= total or time.monotonic() > deadline:
                break  # nothing left to interrupt
            time.sleep(rng.uniform(0, KILL_JITTER_SECONDS))
            if worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)
                report.kills += 1
            else:
                report.problems.append(f"worker exited by itself with {worker.returncode}")
            at_start = _count_messages(outbox)
            worker = procs.start("worker.py", log_name="worker.log")
            report.worker_runs += 1

        wait_while_changing(lambda: _queued(db), STALL_SECONDS, deadline, 0.2)
        worker.send_signal(signal.SIGTERM)
        if worker.wait(timeout=60) != 0:
            report.problems.append(f"worker stopped by SIGTERM exited {worker.returncode}")
        while queued := _queued(db):
            if time.monotonic() > deadline:
                report.problems.append(f"timed out with {queued} rows still queued")
                break
            run_worker_once(procs, deadline, "worker.log")
            report.worker_runs += 1
        report.send_seconds = round(time.monotonic() - send_started, 1)

    report.replayed_sends = _replayed_sends(workdir / "worker.log")
    _check(report, db, outbox, kills)
    report.seconds = round(time.monotonic() - started, 1)
    return report


def _replayed_sends(log: Path) -> int:
    count = 0
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            count += event.get("event") == "row_sent" and event.get("replayed") is True
    return count


def _check(report: EmbeddedSoakReport, db: Path, outbox: Path, kills: int) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT id, email_address, status, resend_email_id, dedupe_key FROM email_queue"
        ).fetchall()
    report.rows = len(rows)
    keys = Counter(row[4] for row in rows)
    report.duplicate_rows = sum(n - 1 for n in keys.values())
    by_status = Counter(row[2] for row in rows)
    report.queued_left = by_status.get("queued", 0)
    report.not_sent = report.rows - by_status.get("sent", 0)

    parser = BytesHeaderParser()
    ids: Counter[str] = Counter()
    per_message: Counter[tuple[str, str]] = Counter()
    files = sorted(outbox.glob("*.eml")) if outbox.exists() else []
    for path in files:
        headers = parser.parsebytes(path.read_bytes())
        ids[str(headers["Message-ID"]).strip("<>")] += 1
        per_message[(str(headers["To"]), str(headers["Subject"]))] += 1
    report.messages = len(files)
    report.stray_temp_files = len(list(outbox.glob(".tmp-*"))) if outbox.exists() else 0
    row_ids = {row[3] for row in rows if row[2] == "sent"}
    report.rows_without_message = sum(1 for message_id in row_ids if message_id not in ids)
    strangers = sum(n for message_id, n in ids.items() if message_id not in row_ids)
    twice = sum(n - 1 for n in per_message.values())
    report.duplicate_messages = max(twice, strangers, report.messages - report.rows)

    checks = [
        (report.accepted == report.events, f"{report.events - report.accepted} events not 202"),
        (report.rows == report.expected_rows, f"{report.rows} rows, {report.expected_rows} due"),
        (report.duplicate_rows == 0, f"{report.duplicate_rows} duplicate rows"),
        (report.queued_left == 0, f"{report.queued_left} rows left queued"),
        (report.not_sent == 0, f"{report.not_sent} rows not sent: {dict(by_status)}"),
        (twice == 0, f"{twice} messages written twice (same recipient and subject)"),
        (strangers == 0, f"{strangers} messages that no row's message id names"),
        (report.messages == report.rows, f"{report.messages} messages for {report.rows} rows"),
        (report.rows_without_message == 0, f"{report.rows_without_message} rows lost"),
        (report.kills == kills, f"{report.kills} kills while sending, of {kills}"),
    ]
    report.problems += [message for ok, message in checks if not ok]

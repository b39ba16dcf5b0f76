"""The PostgreSQL queue under kills (`make soak ARGS='--postgres'`; short run in
tests/test_soak_postgres.py): the real server.py and three worker.py processes on a throw-away
PostgreSQL server, sending to FakeResend on loopback while it fails at random.

1. Intake: `events` signups (5 emails each, all due at once) are posted to the server; its
   journal drains them into PostgreSQL while the workers already send.
2. Sending: three workers (SEND_CONCURRENCY=4 each) claim rows with SKIP LOCKED and send them
   through Resend's batch API, in small batches (RESEND_BATCH_SIZE=5) so that faults and kills
   fall in the middle of many; `kills` times a random one is SIGKILLed at a random moment and
   restarted. Its claims and its pending batch lapse after CLAIM_TTL_SECONDS and another worker
   takes them over, re-sending with the same idempotency key. When nothing is queued any more they are stopped; `worker.py --once` runs until nothing
   is queued.
3. Checks: every row exists once (events x 5, no two with one Dedupe Key), every row is sent,
   and FakeResend delivered exactly one email per row (by recipient and template tag, and again
   by recipient and subject).
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from notion_queue.testing.fake_resend import FakeResend

from .pg_cluster import start_cluster
from .processes import Service, free_port, process_group, wait_until
from .soak import RESEND_FAULTS, ROWS_PER_EVENT, sequences_file
from .soak_common import (
    PRODUCTION_ENV,
    SoakVerdict,
    run_worker_once,
    soak_env,
    wait_while_changing,
)

__all__ = ["PostgresSoakReport", "run_postgres_soak"]

RESEND_KEY = "re_soak_key"
WORKERS = 3
CLAIM_TTL_SECONDS = 3.0  # short, so a killed worker's rows come back within the run
STALL_SECONDS = 10.0
BATCH_SIZE = 5  # emails per Resend batch: many requests, so faults and kills land mid-batch
# Requests/s for the account, shared by the workers: the sending lasts long enough for the kills.
RESEND_PACE = 12.0


@dataclass
class PostgresSoakReport(SoakVerdict):
    mode: str = "postgres"
    events: int = 0
    accepted: int = 0
    expected_rows: int = 0
    rows: int = 0
    duplicate_rows: int = 0
    queued_left: int = 0
    not_sent: int = 0
    deliveries: int = 0  # emails FakeResend accepted
    duplicate_deliveries: int = 0  # beyond one per row
    undelivered_rows: int = 0  # lost
    kills: int = 0
    worker_runs: int = 0
    resend_requests: int = 0
    resend_faults: int = 0
    resend_replays: int = 0  # re-sends after a kill, answered from the idempotency store
    seconds: float = 0.0


def _queued(url: str) -> int:
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT COUNT(*) FROM email_queue WHERE status = 'queued'").fetchone()
    return int(found[0]) if found else 0


def run_postgres_soak(
    events: int,
    kills: int,
    seed: int,
    workdir: Path,
    fault_probability: float = 0.1,
    *,
    timeout: float = 600.0,
) -> PostgresSoakReport:
    started = time.monotonic()
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    report = PostgresSoakReport(events=events, expected_rows=events * ROWS_PER_EVENT)
    cluster = start_cluster()
    database_url = cluster.url()
    fake_resend = FakeResend(api_key=RESEND_KEY, rate_limit=None, seed=seed)
    port = free_port()
    try:
        with fake_resend.serve() as resend_url:
            env = soak_env(
                workdir,
                port,
                sequences_file(workdir),
                QUEUE_BACKEND="postgres",
                DATABASE_URL=database_url,
                CLAIM_TTL_SECONDS=str(CLAIM_TTL_SECONDS),
                MAIL_BACKEND="resend",
                RESEND_API_KEY=RESEND_KEY,
                RESEND_API_URL=resend_url,
                RESEND_REQUESTS_PER_SECOND=str(RESEND_PACE),
                RESEND_BATCH_SIZE=str(BATCH_SIZE),
                **PRODUCTION_ENV,
                SEND_CONCURRENCY="4",
                MAX_ATTEMPTS="20",  # injected faults count as attempts
            )
            url = f"http://127.0.0.1:{port}"
            with (
                process_group(workdir, env) as procs,
                httpx.Client(base_url=url, timeout=30) as http,
            ):
                procs.start("server.py", log_name="server.log")
                wait_until(lambda: http.get("/healthz").status_code == 200, 60, "the server")
                fake_resend.random_faults(fault_probability, statuses=RESEND_FAULTS)
                workers: list[Service] = []
                for n in range(WORKERS):
                    workers.append(procs.start("worker.py", log_name=f"worker{n}.log"))
                    report.worker_runs += 1
                # -- 1. intake while the workers send
                for n in range(events):
                    body = {"email": f"lead{n:05d}@example.com", "first_name": f"Lead{n}"}
                    response = http.post("/webhook/christmas-signup", json=body)
                    if response.status_code == 202:
                        report.accepted += 1
                    else:
                        report.problems.append(f"event {n} answered {response.status_code}")
                # -- 2. kills spread over the sending, each followed by a restart
                deadline = time.monotonic() + timeout
                sending = report.expected_rows / BATCH_SIZE / RESEND_PACE
                moments = sorted(rng.uniform(0.5, max(2.0, sending)) for _ in range(kills))
                kill_started = time.monotonic()
                for moment in moments:
                    time.sleep(max(0.0, kill_started + moment - time.monotonic()))
                    victim = rng.randrange(WORKERS)
                    worker = workers[victim]
                    if worker.poll() is None:
                        worker.send_signal(signal.SIGKILL)
                        worker.wait(timeout=10)
                        report.kills += 1
                    else:
                        report.problems.append(f"worker exited by itself with {worker.returncode}")
                    workers[victim] = procs.start("worker.py", log_name=f"worker{victim}.log")
                    report.worker_runs += 1
                wait_until(
                    lambda: int(http.get("/readyz").json()["journal_backlog"]) == 0,
                    max(1.0, deadline - time.monotonic()),
                    "intake to drain",
                )
                wait_while_changing(lambda: _queued(database_url), STALL_SECONDS, deadline, 0.5)
                for worker in workers:
                    worker.send_signal(signal.SIGTERM)
                for worker in workers:
                    if worker.wait(timeout=60) != 0:
                        report.problems.append(
                            f"worker stopped by SIGTERM exited {worker.returncode}"
                        )
                # -- 3. `--once` runs until nothing is queued (a lapsed claim, a back-off)
                while (queued := _queued(database_url)) > 0:
                    if time.monotonic() > deadline:
                        report.problems.append(f"timed out with {queued} rows still queued")
                        break
                    time.sleep(CLAIM_TTL_SECONDS)
                    run_worker_once(procs, deadline, "worker-once.log")
                    report.worker_runs += 1
                fake_resend.random_faults(0)
        _check(report, database_url, fake_resend)
    finally:
        cluster.stop()
    report.seconds = round(time.monotonic() - started, 1)
    return report


def _check(report: PostgresSoakReport, url: str, fake_resend: FakeResend) -> None:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, dedupe_key, status, email_address, template_id FROM email_queue"
        ).fetchall()
    report.rows = len(rows)
    keys = Counter(key for _, key, _, _, _ in rows)
    report.duplicate_rows = sum(n - 1 for n in keys.values())
    statuses = Counter(status for _, _, status, _, _ in rows)
    report.queued_left = statuses.get("queued", 0)
    report.not_sent = report.rows - statuses.get("sent", 0)
    row_ids = {row_id for row_id, _, _, _, _ in rows}
    # A batch's key covers the batch, so an email is matched to its row by recipient and
    # template (one row each: the Dedupe Keys are checked above).
    by_email = {(address, template): row_id for row_id, _, _, address, template in rows}
    per_row: Counter[str] = Counter()
    strangers = 0
    for email in fake_resend.sent:
        found = (email.recipients[:1] or ("",))[0], email.tags.get("template", "")
        row_id = by_email.get(found) if len(email.recipients) == 1 else None
        if row_id is not None:
            per_row[row_id] += 1
        else:
            strangers += 1
    report.deliveries = len(fake_resend.sent)
    report.duplicate_deliveries = sum(n - 1 for n in per_row.values()) + strangers
    report.undelivered_rows = len(row_ids - set(per_row))
    per_message = Counter((email.to, email.subject) for email in fake_resend.sent)
    twice = sum(n - 1 for n in per_message.values())
    report.resend_requests = len(fake_resend.requests)
    report.resend_faults = sum(1 for r in fake_resend.requests if r.status in {0, 429, 500, 503})
    report.resend_replays = sum(1 for r in fake_resend.requests if r.replayed)
    for ok, problem in (
        (
            report.rows == report.expected_rows,
            f"{report.rows} rows, {report.expected_rows} expected",
        ),
        (report.duplicate_rows == 0, f"{report.duplicate_rows} duplicate rows"),
        (report.not_sent == 0, f"{report.not_sent} rows not sent"),
        (report.duplicate_deliveries == 0, f"{report.duplicate_deliveries} duplicate deliveries"),
        (twice == 0, f"{twice} messages delivered twice (same recipient and subject)"),
        (report.undelivered_rows == 0, f"{report.undelivered_rows} rows never delivered (lost)"),
    ):
        if not ok:
            report.problems.append(problem)

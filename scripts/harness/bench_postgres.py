"""`make bench ARGS=--postgres`: the PostgreSQL queue on a throw-away server.

- sending: a backlog of due rows drained by 1, 2 and 4 real worker.py processes into the fake
  Resend limited to `--resend-rps` (2 requests/s, Resend's default). Every worker is told the
  account's rate: they share it through the database (store/postgres_pacing.py). They send
  through Resend's batch API (up to 100 emails a request). emails/s = rows / (last Sent At - start), start-up included;
  emails/s first to last = rows / (last Sent At - first Sent At).
- intake: `--events` signups posted to the real server as fast as one client can, then drained
  by its journal into PostgreSQL (5 rows each): events/s from the first post until the journal
  is empty.

Prints the figures as JSON and writes them to OUT/results-postgres.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from notion_queue.models import NewRow, Status
from notion_queue.store.postgres import PostgresStore
from notion_queue.testing.fake_resend import FakeResend

from .pg_cluster import start_cluster
from .processes import free_port, process_group, wait_until
from .soak import sequences_file

RESEND_KEY = "re_bench_key"
TABLES = (
    "email_queue, contacts, email_analytics, worker_lease, templates, migrated_rows,"
    " pending_batches, rate_slots"
)


def _env(database_url: str, resend_url: str, workdir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTION_", "RESEND_"))}
    env.update(
        QUEUE_BACKEND="postgres",
        DATABASE_URL=database_url,
        MAIL_BACKEND="resend",
        RESEND_API_KEY=RESEND_KEY,
        RESEND_API_URL=resend_url,
        PUBLIC_BASE_URL="https://funnel.businessx.com",
        ALLOW_UNSIGNED_WEBHOOKS="true",
        UNSIGNED_REQUESTS_PER_MINUTE_PER_CLIENT="1000000",
        UNSIGNED_REQUESTS_PER_HOUR_PER_ADDRESS="1000000",
        STATE_DIR=str(workdir / "state"),
        SEQUENCES_FILE=str(sequences_file(workdir)),
        TESTING_MODE="true",
        POLL_INTERVAL_SECONDS="1",
        UNSUBSCRIBE_SECRET="bench-unsubscribe-secret",
        LOG_FORMAT="json",
        LOG_LEVEL="warning",
        **extra,
    )
    return env


def bench_sending(
    store: PostgresStore, database_url: str, workdir: Path, rows: int, workers: int, rps: float
) -> dict[str, Any]:
    store._query(f"TRUNCATE {TABLES} RESTART IDENTITY")
    due = datetime.now(UTC) - timedelta(seconds=1)
    for i in range(rows):
        store.add_row(
            NewRow(
                email=f"lead{i}@example.com",
                first_name="Lead",
                sequence="lead_nurture",
                email_number=1,
                template_id="lead_nurture_email_1",
                scheduled_time=due,
                dedupe_key=f"bench/{workers}/{i}",
                variables={"business_name": "Bench"},
                status=Status.QUEUED,
            )
        )
    fake = FakeResend(api_key=RESEND_KEY, rate_limit=rps, burst=rps)
    with fake.serve() as resend_url:
        env = _env(
            database_url,
            resend_url,
            workdir,
            RESEND_REQUESTS_PER_SECOND=str(rps),
            SEND_CONCURRENCY="4",
        )
        with process_group(workdir, env) as procs:
            started = datetime.now(UTC)
            for n in range(workers):
                procs.start("worker.py", log_name=f"bench-worker{n}.log")

            def all_sent() -> bool:
                found = store._query("SELECT COUNT(*) AS n FROM email_queue WHERE status = 'sent'")
                return int(found[0]["n"]) == rows

            wait_until(
                all_sent, timeout=rows / rps * 3 + 60, what="the backlog to be sent", step=0.2
            )
    span = store._query("SELECT MIN(sent_at) AS first, MAX(sent_at) AS last FROM email_queue")[0]
    seconds = (span["last"] - started).total_seconds()
    sending = (span["last"] - span["first"]).total_seconds()
    return {
        "workers": workers,
        "rows": rows,
        "seconds": round(seconds, 2),
        "emails_per_second": round(rows / seconds, 2),
        "seconds_first_to_last": round(sending, 2),
        "emails_per_second_first_to_last": round(rows / sending, 2) if sending > 0 else None,
        "batch_requests": sum(1 for r in fake.requests if r.path == "/emails/batch"),
        "resend_requests": len(fake.requests),
        "resend_429": sum(1 for r in fake.requests if r.status == 429),
        "deliveries": len(fake.sent),
    }


def bench_intake(
    store: PostgresStore, database_url: str, workdir: Path, events: int
) -> dict[str, Any]:
    store._query(f"TRUNCATE {TABLES} RESTART IDENTITY")
    port = free_port()
    env = _env(database_url, "http://127.0.0.1:9", workdir, PORT=str(port))
    env["MAIL_BACKEND"] = "outbox"
    with (
        process_group(workdir, env) as procs,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
    ):
        procs.start("server.py", log_name="bench-server.log")
        wait_until(lambda: http.get("/healthz").status_code == 200, 60, "the server")
        started = time.monotonic()
        for n in range(events):
            body = {"email": f"intake{n}@example.com", "first_name": f"Lead{n}"}
            http.post("/webhook/christmas-signup", json=body).raise_for_status()
        posted = time.monotonic() - started
        wait_until(
            lambda: int(http.get("/readyz").json()["journal_backlog"]) == 0,
            600,
            "intake to drain",
            step=0.1,
        )
        drained = time.monotonic() - started
    rows = int(store._query("SELECT COUNT(*) AS n FROM email_queue")[0]["n"])
    return {
        "events": events,
        "rows": rows,
        "post_seconds": round(posted, 2),
        "drain_seconds": round(drained, 2),
        "events_per_second": round(events / drained, 1),
        "rows_per_second": round(rows / drained, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench --postgres", description=__doc__)
    parser.add_argument("--postgres", action="store_true", help="(this benchmark)")
    parser.add_argument("--rows", type=int, default=200, help="backlog per worker count")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma separated")
    parser.add_argument("--resend-rps", type=float, default=2.0)
    parser.add_argument("--events", type=int, default=300, help="signups for the intake figure")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args, _ = parser.parse_known_args(argv)
    cluster = start_cluster()
    results: dict[str, Any] = {"resend_rps": args.resend_rps, "sending": []}
    try:
        store = PostgresStore(cluster.url())
        try:
            workdir = cluster.root / "work"
            workdir.mkdir()
            for count in (int(n) for n in args.workers.split(",")):
                results["sending"].append(
                    bench_sending(store, cluster.url(), workdir, args.rows, count, args.resend_rps)
                )
            results["intake"] = bench_intake(store, cluster.url(), workdir, args.events)
        finally:
            store.close()
    finally:
        cluster.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2)
    (args.out / "results-postgres.json").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0

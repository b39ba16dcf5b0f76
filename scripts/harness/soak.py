"""The fault-injection scenario shared by tests/test_faults_soak.py (short) and scripts/soak.py
(long): the real server.py and worker.py processes against FakeNotion and FakeResend on loopback.

1. Intake: `events` signups (5 emails each, all due at once through a SEQUENCES_FILE whose
   lead_nurture steps are all at "0m") are posted to the server while Notion answers 429, 500,
   503 and timeouts at random, some of them after the write was committed; in the middle of
   intake Notion is taken down entirely for a while. Every event must be answered 202.
2. Sending: a long-running worker sends while Resend fails at random too (including "sent, but
   the client never heard"), and is SIGKILLed at random moments `kills` times (restarted each
   time). Then `worker.py --once` runs until no row is queued, faults still on.
3. Checks: every row exists once (no two rows with one Dedupe Key, events x 5 in all), no row is
   left queued, every row is sent, and every row was delivered exactly once at FakeResend.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from notion_queue.clock import SystemClock
from notion_queue.notion_setup import NotionSetup
from notion_queue.store.notion_gateway import NotionGateway, build_client
from notion_queue.testing.fake_notion import FakeNotion
from notion_queue.testing.fake_resend import FakeResend

from .processes import free_port, process_group, wait_until
from .soak_common import (
    PRODUCTION_ENV,
    SoakVerdict,
    run_worker_once,
    soak_env,
    wait_while_changing,
)

__all__ = ["SoakReport", "main", "run_soak"]

NOTION_TOKEN = "secret_soak_notion_token"
RESEND_KEY = "re_soak_key"
ROWS_PER_EVENT = 5  # lead_nurture_email_1..5
NOTION_FAULTS = (
    (429, "rate_limited"),
    (500, "internal_server_error"),
    (503, "service_unavailable"),
)
RESEND_FAULTS = (
    (429, "rate_limit_exceeded"),
    (500, "internal_server_error"),
    (503, "application_error"),
)
RESEND_PACE = 2.0  # requests/s: ResendMailer's pacing, so the sending takes rows / 2 s
STALL_SECONDS = 5.0
FAULT_STATUSES = frozenset({0, 429, 500, 503})  # 0: a timeout (no answer); the fakes' own
# rate limits are off, so every one of these was injected


@dataclass
class SoakReport(SoakVerdict):
    events: int = 0  # posted
    accepted: int = 0  # answered 202
    accepted_during_outage: int = 0
    rejected_events: int = 0  # given up by the drainer (a lost event)
    expected_rows: int = 0
    rows: int = 0  # in the Email Queue data source
    duplicate_rows: int = 0  # rows beyond the first with the same Dedupe Key
    duplicate_contacts: int = 0
    queued_left: int = 0
    not_sent: int = 0  # rows in any status but sent
    deliveries: int = 0  # emails FakeResend accepted
    delivered_rows: int = 0  # rows with at least one delivery
    duplicate_deliveries: int = 0  # deliveries beyond the first for a row
    undelivered_rows: int = 0
    kills: int = 0  # SIGKILLs of the worker
    worker_runs: int = 0  # worker processes started in all
    notion_requests: int = 0
    notion_faults: int = 0  # 429/500/503/timeouts injected
    notion_committed_faults: int = 0  # of which: answered an error after the write was applied
    notion_timeouts: int = 0
    notion_outage_seconds: float = 0.0
    resend_requests: int = 0
    resend_faults: int = 0
    resend_timeouts: int = 0
    resend_replays: int = 0  # answered from the Idempotency-Key store, nothing sent
    seconds: float = 0.0


def sequences_file(workdir: Path) -> Path:
    """The packaged catalog with every lead_nurture step at "0m", so each signup's five rows are
    due at once."""
    text = resources.files("notion_queue").joinpath("sequences.toml").read_text("utf-8")
    start = text.index("[sequences.lead_nurture]")
    end = text.index("[sequences.", start + 1)
    section = re.sub(r'offset = "[^"]*"', 'offset = "0m"', text[start:end])
    path = workdir / "sequences.toml"
    path.write_text(text[:start] + section + text[end:], encoding="utf-8")
    return path


def _plain(prop: dict[str, Any]) -> str:
    items = prop.get("rich_text") or prop.get("title") or []
    return "".join(str(item.get("plain_text", "")) for item in items)


def _status(page: dict[str, Any]) -> str:
    select = page["properties"]["Status"].get("select")
    return str(select["name"]) if select else ""


def _bare_id(value: str) -> str:
    return value.replace("-", "").lower()


def run_soak(
    events: int,
    kills: int,
    seed: int,
    workdir: Path,
    fault_probability: float = 0.1,
    *,
    outage_seconds: float = 2.0,
    timeout: float = 600.0,
) -> SoakReport:
    """Run the whole scenario in `workdir` (created if needed) and report the figures; the
    report's `problems` lists every broken invariant (empty: all held)."""
    started = time.monotonic()
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    report = SoakReport(events=events, expected_rows=events * ROWS_PER_EVENT)

    fake_notion = FakeNotion(token=NOTION_TOKEN, seed=seed)
    fake_resend = FakeResend(api_key=RESEND_KEY, rate_limit=None, seed=seed)
    parent = fake_notion.create_parent_page("Soak")
    gateway = NotionGateway(
        build_client(NOTION_TOKEN, "https://api.notion.com", transport=fake_notion.transport()),
        SystemClock(),
        requests_per_second=1000,
        burst=1000,
    )
    setup = NotionSetup(gateway).run(parent)
    queue_ds = setup.data_source_ids["Email Queue"]
    contacts_ds = setup.data_source_ids["Contacts"]
    fake_notion.requests.clear()
    port = free_port()

    with (
        fake_notion.serve() as notion_url,
        fake_resend.serve() as resend_url,
    ):
        env = soak_env(
            workdir,
            port,
            sequences_file(workdir),
            QUEUE_BACKEND="notion",
            MAIL_BACKEND="resend",
            NOTION_TOKEN=NOTION_TOKEN,
            NOTION_API_BASE_URL=notion_url,
            NOTION_EMAIL_QUEUE_DB_ID=setup.database_ids["Email Queue"],
            NOTION_TEMPLATES_DB_ID=setup.database_ids["Templates"],
            NOTION_CONTACTS_DB_ID=setup.database_ids["Contacts"],
            NOTION_WORKERS_DB_ID=setup.database_ids["Workers"],
            # The fake has no rate limit: pace the clients well above Notion's 3/s so the
            # scenario is about faults, not about waiting.
            NOTION_REQUESTS_PER_SECOND="100",
            RESEND_REQUESTS_PER_SECOND="20",
            RESEND_API_KEY=RESEND_KEY,
            RESEND_API_URL=resend_url,
            **PRODUCTION_ENV,
            SQLITE_PATH=str(workdir / "unused.sqlite3"),
            OUTBOX_DIR=str(workdir / "outbox"),
            SEND_CONCURRENCY="4",
            # Injected faults count as attempts; the default (5) would fail an unlucky row.
            MAX_ATTEMPTS="20",
            TEMPLATE_CACHE_SECONDS="300",
        )
        url = f"http://127.0.0.1:{port}"
        with process_group(workdir, env) as procs, httpx.Client(base_url=url, timeout=30) as http:
            procs.start("server.py", log_name="server.log")
            wait_until(lambda: http.get("/healthz").status_code == 200, 30, "the server")

            # -- 1. intake under random faults, with an outage in the middle; the worker sends
            # from the start
            fake_resend.random_faults(
                fault_probability,
                statuses=RESEND_FAULTS,
                commit_probability=0.5,
                timeout_probability=0.4,
            )
            worker = procs.start("worker.py", log_name="worker.log")
            worker_started = time.monotonic()
            report.worker_runs += 1
            fake_notion.random_faults(
                fault_probability,
                statuses=NOTION_FAULTS,
                commit_probability=0.5,
                timeout_probability=0.25,
            )
            outage_at = events // 2
            outage_end = outage_at + max(1, events // 5)
            outage_started = 0.0
            down = False
            for n in range(events):
                if n == outage_at:
                    fake_notion.take_down()
                    down = True
                    outage_started = time.monotonic()
                body = {
                    "email": f"lead{n:05d}@example.com",
                    "first_name": f"Lead{n}",
                    "business_name": f"Business {n}",
                }
                response = http.post("/webhook/christmas-signup", json=body)
                if response.status_code == 202 and response.json().get("status") == "accepted":
                    report.accepted += 1
                    if down:
                        report.accepted_during_outage += 1
                else:
                    report.problems.append(
                        f"event {n} answered {response.status_code}: {response.text[:200]}"
                    )
                if down and n in (outage_end - 1, events - 1):
                    time.sleep(max(0.0, outage_seconds - (time.monotonic() - outage_started)))
                    fake_notion.bring_up()
                    down = False
                    report.notion_outage_seconds = round(time.monotonic() - outage_started, 2)

            # -- 2. the worker, killed at random moments spread over the sending, while intake
            # drains and Resend fails too; each kill is followed by a restart
            def backlog() -> int:
                return int(http.get("/readyz").json()["journal_backlog"])

            def queued_rows() -> int:
                return sum(1 for p in fake_notion.pages(queue_ds) if _status(p) == "queued")

            sending = report.expected_rows / RESEND_PACE
            moments = sorted(rng.uniform(2.0, max(4.0, 0.7 * sending)) for _ in range(kills))
            at = 0.0
            for moment in moments:
                at = max(moment, at + 3.0)  # a restarted worker gets going before the next kill
                time.sleep(max(0.0, worker_started + at - time.monotonic()))
                if worker.poll() is None:
                    worker.send_signal(signal.SIGKILL)
                    worker.wait(timeout=10)
                    report.kills += 1
                else:
                    report.problems.append(f"worker exited by itself with {worker.returncode}")
                worker = procs.start("worker.py", log_name="worker.log")
                report.worker_runs += 1

            deadline = time.monotonic() + timeout
            wait_until(
                lambda: backlog() == 0, max(1.0, deadline - time.monotonic()), "intake to drain"
            )
            # The last worker runs until nothing is queued or it only waits on deferred rows'
            # back-off (30 s and more): then it is stopped with SIGTERM.
            wait_while_changing(queued_rows, STALL_SECONDS, deadline, 0.5)
            worker.send_signal(signal.SIGTERM)
            if worker.wait(timeout=60) != 0:
                report.problems.append(f"worker stopped by SIGTERM exited {worker.returncode}")

            # -- 3. fresh `worker.py --once` runs until nothing is queued (faults still on; a
            # fresh process also forgets the in-memory back-off of deferred rows)
            while True:
                queued = sum(1 for p in fake_notion.pages(queue_ds) if _status(p) == "queued")
                if not queued:
                    break
                if time.monotonic() > deadline:
                    report.problems.append(f"timed out with {queued} rows still queued")
                    break
                run_worker_once(procs, deadline, "worker.log")
                report.worker_runs += 1
            fake_notion.random_faults(0)
            fake_resend.random_faults(0)

    # -- figures and invariants (the fakes are stopped: nothing changes any more)
    with contextlib.closing(sqlite3.connect(workdir / "state" / "intake.sqlite3")) as journal:
        statuses = dict(journal.execute("SELECT status, COUNT(*) FROM events GROUP BY status"))
    report.rejected_events = int(statuses.get("rejected", 0))
    pages = fake_notion.pages(queue_ds)
    report.rows = len(pages)
    keys = Counter(_plain(p["properties"]["Dedupe Key"]) for p in pages)
    report.duplicate_rows = sum(n - 1 for n in keys.values())
    report.problems += [f"Dedupe Key {k!r} on {n} rows" for k, n in keys.items() if n > 1][:10]
    contacts = Counter(
        str(p["properties"]["Email"].get("email") or "").lower()
        for p in fake_notion.pages(contacts_ds)
    )
    report.duplicate_contacts = sum(n - 1 for n in contacts.values())
    by_status = Counter(_status(p) for p in pages)
    report.queued_left = by_status.get("queued", 0)
    report.not_sent = report.rows - by_status.get("sent", 0)

    row_ids = {_bare_id(str(p["id"])) for p in pages}
    per_row: Counter[str] = Counter()
    strangers = 0
    for email in fake_resend.sent:
        key = email.idempotency_key or ""
        parts = key.split("/")
        row_id = _bare_id(parts[1]) if len(parts) == 3 else ""
        if row_id in row_ids:
            per_row[row_id] += 1
        else:
            strangers += 1
    report.deliveries = len(fake_resend.sent)
    report.delivered_rows = len(per_row)
    report.duplicate_deliveries = sum(n - 1 for n in per_row.values()) + strangers
    report.undelivered_rows = len(row_ids - set(per_row))
    # The same check without trusting the key: one email per (recipient, subject).
    per_message = Counter((email.to, email.subject) for email in fake_resend.sent)
    twice = sum(n - 1 for n in per_message.values())

    report.notion_requests = len(fake_notion.requests)
    notion_faults = [r for r in fake_notion.requests if r.status in FAULT_STATUSES]
    report.notion_faults = len(notion_faults)
    report.notion_committed_faults = fake_notion.committed_faults
    report.notion_timeouts = sum(1 for r in notion_faults if r.status == 0)
    report.resend_requests = len(fake_resend.requests)
    report.resend_faults = sum(1 for r in fake_resend.requests if r.status in FAULT_STATUSES)
    report.resend_timeouts = sum(1 for r in fake_resend.requests if r.status == 0)
    report.resend_replays = sum(1 for r in fake_resend.requests if r.replayed)

    checks = [
        (report.accepted == events, f"{events - report.accepted} events not answered 202"),
        (report.rejected_events == 0, f"{report.rejected_events} events rejected by the drainer"),
        (report.rows == report.expected_rows, f"{report.rows} rows, {report.expected_rows} due"),
        (report.duplicate_rows == 0, f"{report.duplicate_rows} duplicate rows in Notion"),
        (report.queued_left == 0, f"{report.queued_left} rows left queued"),
        (report.not_sent == 0, f"{report.not_sent} rows not sent: {dict(by_status)}"),
        (report.duplicate_deliveries == 0, f"{report.duplicate_deliveries} duplicate deliveries"),
        (twice == 0, f"{twice} messages delivered twice (same recipient and subject)"),
        (report.undelivered_rows == 0, f"{report.undelivered_rows} rows never delivered"),
        (report.kills == kills, f"{report.kills} kills of {kills}"),
    ]
    report.problems += [message for ok, message in checks if not ok]
    report.seconds = round(time.monotonic() - started, 1)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="soak.py",
        description="The long fault-injection soak: real server and worker processes against "
        "the fake Notion and Resend; prints the figures as JSON (exit 1 if an invariant broke).",
    )
    parser.add_argument("--events", type=int, default=200, help="signups (5 emails each)")
    parser.add_argument("--kills", type=int, default=8, help="SIGKILLs of the worker")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault-probability", type=float, default=0.1)
    parser.add_argument("--outage-seconds", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after (s)")
    parser.add_argument("--workdir", type=Path, default=None, help="kept; default: a temp dir")
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="the embedded default instead (SQLite queue, outbox mailer, no fakes, worker "
        "killed while sending with SEND_CONCURRENCY=8); --fault-probability and "
        "--outage-seconds do not apply",
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="the PostgreSQL queue instead: a throw-away server, three workers SIGKILLed at"
        " random and restarted, Resend failing at random (--outage-seconds is not used)",
    )
    args = parser.parse_args(argv)
    if args.embedded:
        return _main_embedded(args)
    if args.postgres:
        return _main_postgres(args)
    if args.workdir is not None:
        report = run_soak(
            args.events,
            args.kills,
            args.seed,
            args.workdir,
            args.fault_probability,
            outage_seconds=args.outage_seconds,
            timeout=args.timeout,
        )
    else:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="notion-queue-soak-") as tmp:
            report = run_soak(
                args.events,
                args.kills,
                args.seed,
                Path(tmp),
                args.fault_probability,
                outage_seconds=args.outage_seconds,
                timeout=args.timeout,
            )
    print(report.to_json())
    return 0 if report.ok else 1


def _main_embedded(args: argparse.Namespace) -> int:
    import tempfile

    from .soak_embedded import run_embedded_soak

    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="notion-queue-soak-"))
        )
        report = run_embedded_soak(
            args.events, args.kills, args.seed, workdir, timeout=args.timeout
        )
    print(report.to_json())
    return 0 if report.ok else 1


def _main_postgres(args: argparse.Namespace) -> int:
    import tempfile

    from .soak_postgres import run_postgres_soak

    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="notion-queue-soak-"))
        )
        report = run_postgres_soak(
            args.events,
            args.kills,
            args.seed,
            workdir,
            args.fault_probability,
            timeout=args.timeout,
        )
    print(report.to_json())
    return 0 if report.ok else 1

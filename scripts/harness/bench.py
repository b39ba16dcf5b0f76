"""`make bench`: the real server and worker against the fake Notion and fake Resend served on
loopback, with their rate limits and per-call latency, and the seed's loop taken literally as a
baseline on the same fakes. Writes results.json and results.md.

Scenarios (each on fresh fakes):
- leads: N signups posted to the real server (a catalog whose lead_nurture steps are all due at
  once), drained by the real worker: Notion requests per sent email against the floor of 2.4,
  with each process's once-only requests (start-up, lease) counted apart;
- drain: a backlog of due rows drained by the real worker, then the same backlog by the baseline
  loop: throughput against min(Notion rate, Resend rate), and send-side requests per email;
- idle poll: a running worker over an empty queue and over K finished rows: requests per poll;
- lateness: rows written while the worker idles, known a poll ahead (and, for contrast, written
  less than a poll before they fall due): Sent At − Scheduled Time;
- intake: fixed-rate webhook POSTs from a separate load process: latency p50/p99; peak RSS
  (VmHWM) of server and worker;
- embedded (bench_embedded.py): the default backend's drain at 1 000/10 000/100 000 rows
  against an fsync loop, its intake at 100/300/500 events/s, the first email's latency on both
  backends, and RSS after history. `--embedded-only` runs just it (`make bench-embedded`),
  `--skip-embedded` everything else.
- batch: a backlog of due rows in SQLite drained by the real worker through Resend's batch API
  (100 emails a request) against the fake Resend at its rate limit (2 requests/s by default):
  emails/s delivered (rows marked sent), against the 150/s target. `--only=batch` runs it alone.

Seeding goes through the fake's in-process transport with its rate limit switched off; only the
requests made while a scenario measures are counted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from notion_queue.clock import SystemClock
from notion_queue.models import NewRow, Status
from notion_queue.notion_setup import NotionSetup
from notion_queue.pacing import TokenBucket
from notion_queue.store.notion import NotionStore
from notion_queue.store.notion_gateway import NotionGateway, build_client
from notion_queue.testing.fake_notion import FakeNotion, RecordedRequest
from notion_queue.testing.fake_resend import FakeResend

from . import bench_embedded as embedded
from .processes import Service, free_port, wait_until

HARNESS = Path(__file__).resolve().parent

TOKEN = "secret_bench_notion_token"
RESEND_KEY = "re_bench_key"
FLOOR_PER_EMAIL = (5 + 5 + 2) / 5  # a new lead's 5-email sequence: 5 creates + 5 updates + 2
SEED_POLL_SLEEP = 60.0  # the seed's loop sleeps a fixed 60 s between polls


@dataclass
class BenchConfig:
    notion_rps: float = 3.0
    notion_burst: float = 3.0
    notion_latency: tuple[float, float] = (0.150, 0.400)
    resend_rps: float = 2.0
    resend_burst: float = 2.0
    resend_latency: tuple[float, float] = (0.050, 0.150)
    leads: int = 20
    backlog: int = 1000
    finished_rows: int = 100_000
    idle_window: float = 10.0  # seconds of a running idle worker counted per scenario
    lateness_rows: int = 20
    lateness_poll: float = 60.0
    intake_rate: float = 100.0
    intake_seconds: float = 30.0
    send_concurrency: int = 4
    batch_rows: int = 3000
    only: str = ""  # "batch": that scenario alone
    timeout: float = 1800.0
    quiet: bool = False

    @property
    def ceiling(self) -> float:
        return min(self.notion_rps, self.resend_rps)


QUICK = {
    "notion_rps": 30.0,
    "notion_burst": 10.0,
    "notion_latency": (0.005, 0.020),
    "resend_rps": 20.0,
    "resend_burst": 10.0,
    "resend_latency": (0.002, 0.010),
    "leads": 5,
    "backlog": 30,
    "finished_rows": 2000,
    "lateness_rows": 6,
    "lateness_poll": 5.0,
    "intake_rate": 50.0,
    "intake_seconds": 5.0,
    "batch_rows": 300,
    "timeout": 300.0,
}


# ------------------------------------------------------------------------------------ helpers


def _say(config: BenchConfig, message: str) -> None:
    if not config.quiet:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM (the peak resident set) of a live process, in KiB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def _counts(requests: list[RecordedRequest]) -> dict[str, int]:
    return dict(sorted(Counter(r.kind for r in requests).items()))


def _catalog_all_due_at_once() -> str:
    """The packaged catalog with every lead_nurture step at offset 0 (all 5 due at once)."""
    text = resources.files("notion_queue").joinpath("sequences.toml").read_text("utf-8")
    start = text.index("[sequences.lead_nurture]")
    end = text.index("[sequences.", start + 1)
    block = re.sub(r'(offset|testing_offset) = "[^"]*"', r'\1 = "0m"', text[start:end])
    return text[:start] + block + text[end:]


class Fakes:
    """A fake Notion (with the three databases) and a fake Resend, served on loopback."""

    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.notion = FakeNotion(token=TOKEN)  # no rate limit while seeding
        self.resend = FakeResend(
            api_key=RESEND_KEY, rate_limit=config.resend_rps, burst=config.resend_burst
        )
        self.resend.latency = config.resend_latency
        gateway = NotionGateway(
            build_client(TOKEN, "https://api.notion.com", transport=self.notion.transport()),
            SystemClock(),
            requests_per_second=100_000,
            burst=100_000,
        )
        parent = self.notion.create_parent_page()
        self.ids = NotionSetup(gateway).run(parent).database_ids
        self.store = NotionStore(
            gateway,
            email_queue_db_id=self.ids["Email Queue"],
            templates_db_id=self.ids["Templates"],
            contacts_db_id=self.ids["Contacts"],
            workers_db_id=self.ids["Workers"],
        )
        self.queue_ds = self.store.queue_ds
        self.ds_names = {
            self.store.queue_ds: "email_queue",
            self.store.templates_ds: "templates",
            self.store.contacts_ds: "contacts",
            self.store.workers_ds: "workers",
        }
        self.notion_url = ""
        self.resend_url = ""
        self._stack = contextlib.ExitStack()

    def limit(self) -> None:
        """Switch the rate limit and latency on (after seeding)."""
        self.notion.rate_limit = self.config.notion_rps
        self.notion._bucket = TokenBucket(
            self.notion.clock, self.config.notion_rps, self.config.notion_burst
        )
        self.notion.latency = self.config.notion_latency

    def __enter__(self) -> Fakes:
        self.limit()
        self.notion_url = self._stack.enter_context(self.notion.serve())
        self.resend_url = self._stack.enter_context(self.resend.serve())
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self.notion._bucket = None  # seeding between runs is not limited
        self.notion.latency = None

    def mark(self) -> int:
        return len(self.notion.requests)

    def since(self, mark: int) -> list[RecordedRequest]:
        return list(self.notion.requests[mark:])

    def query_split(self, requests: list[RecordedRequest]) -> dict[str, int]:
        """Queries by data source (the fake's path names it)."""
        split: Counter[str] = Counter()
        for r in requests:
            if r.kind == "query":
                ds = r.path.split("/")[3] if r.path.count("/") >= 3 else "?"
                split[self.ds_names.get(ds, ds)] += 1
        return dict(split)

    def statuses(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for page in self.notion.pages(self.queue_ds):
            select = page["properties"]["Status"]["select"]
            counts[select["name"] if select else ""] += 1
        return counts

    def env(self, workdir: Path, **extra: str) -> dict[str, str]:
        drop = ("NOTION_", "RESEND_", "TESTING_MODE", "SEQUENCES_FILE", "POLL_", "SEND_")
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
        env.update(
            QUEUE_BACKEND="notion",
            MAIL_BACKEND="resend",
            NOTION_TOKEN=TOKEN,
            NOTION_API_BASE_URL=self.notion_url,
            NOTION_EMAIL_QUEUE_DB_ID=self.ids["Email Queue"],
            NOTION_TEMPLATES_DB_ID=self.ids["Templates"],
            NOTION_CONTACTS_DB_ID=self.ids["Contacts"],
            NOTION_WORKERS_DB_ID=self.ids["Workers"],
            # The product's default (2.7 under Notion's 3 rps), scaled with the fake's limit.
            NOTION_REQUESTS_PER_SECOND=f"{2.7 * self.config.notion_rps / 3:g}",
            RESEND_API_KEY=RESEND_KEY,
            RESEND_API_URL=self.resend_url,
            # Production (MAIL_BACKEND=resend) wants a public https base URL and signed or
            # rate-limited website endpoints; the load comes from one client, so no limit.
            PUBLIC_BASE_URL="https://funnel.businessx.com",
            ALLOW_UNSIGNED_WEBHOOKS="true",
            UNSIGNED_REQUESTS_PER_MINUTE_PER_CLIENT="1000000",
            UNSIGNED_REQUESTS_PER_HOUR_PER_ADDRESS="1000000",
            # Read only if the product has such a setting (ignored otherwise).
            RESEND_REQUESTS_PER_SECOND=str(self.config.resend_rps),
            SEND_CONCURRENCY=str(self.config.send_concurrency),
            STATE_DIR=str(workdir / "state"),
            SQLITE_PATH=str(workdir / "unused.sqlite3"),
            OUTBOX_DIR=str(workdir / "outbox"),
            POLL_INTERVAL_SECONDS="1",
            LOG_FORMAT="json",
            LOG_LEVEL="warning",
        )
        env.update(extra)
        return env


class Proc(Service):
    """A real server.py / worker.py process; remembers its peak RSS."""

    def __init__(self, script: str, env: dict[str, str], workdir: Path, *args: str) -> None:
        log = workdir / f"{script.removesuffix('.py')}-{uuid.uuid4().hex[:6]}.log"
        super().__init__(script, env, workdir, log, *args)
        self.peak_kib: int | None = None

    def sample(self) -> None:
        peak = peak_rss_kib(self.pid)
        if peak is not None:
            self.peak_kib = max(self.peak_kib or 0, peak)

    def stop(self, timeout: float = 30.0) -> int:
        self.sample()
        return super().stop(timeout)


@contextlib.contextmanager
def running(script: str, env: dict[str, str], workdir: Path, *args: str) -> Iterator[Proc]:
    proc = Proc(script, env, workdir, *args)
    sampler_stop = threading.Event()

    def sampler() -> None:
        while not sampler_stop.wait(0.5):
            proc.sample()

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    try:
        yield proc
    except BaseException:
        print(f"--- {proc.name} log tail ---\n{proc.tail()}", file=sys.stderr)
        raise
    finally:
        sampler_stop.set()
        thread.join()
        proc.stop()


def _server(fakes: Fakes, workdir: Path, **extra: str) -> contextlib.AbstractContextManager[Proc]:
    return running("server.py", fakes.env(workdir, **extra), workdir)


def _wait_healthy(url: str, proc: Proc) -> None:
    def healthy() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
        # store_ok: the drainer has looked up the data sources (the server's once-only cost).
        return bool(httpx.get(f"{url}/readyz", timeout=5).json()["store_ok"])

    wait_until(healthy, 60, "the server to reach the store")


def _backlog_rows(count: int, scheduled: datetime, tag: str) -> Iterator[NewRow]:
    for n in range(count):
        yield NewRow(
            email=f"{tag}{n}@example.com",
            first_name=f"Lead{n}",
            sequence="lead_nurture",
            email_number=1,
            template_id="lead_nurture_email_1",
            scheduled_time=scheduled,
            dedupe_key=f"bench:{tag}:{n}",
            variables={"first_name": f"Lead{n}"},
        )


def _send_rate(times: list[datetime]) -> float | None:
    """Sends per second between the first and the last send."""
    if len(times) < 2:
        return None
    span = (max(times) - min(times)).total_seconds()
    return (len(times) - 1) / span if span > 0 else None


# ------------------------------------------------------------------------------------ scenarios


def _first_queue_query(fakes: Fakes, since: int) -> int | None:
    for index in range(since, fakes.mark()):
        if fakes.query_split([fakes.notion.requests[index]]).get("email_queue"):
            return index
    return None


def _worker_phases(
    fakes: Fakes, start: int, stop: int
) -> tuple[list[RecordedRequest], list[RecordedRequest], list[RecordedRequest]]:
    """A worker's requests, from mark `start` (before it started) on, in three parts: its
    start-up (data sources, lease claim) before its first poll, its work up to mark `stop`
    (when it is told to stop), and its shutdown (lease release) after that."""
    requests = fakes.notion.requests
    first_poll = _first_queue_query(fakes, start) or stop
    return requests[start:first_poll], requests[first_poll:stop], requests[stop:]


def bench_leads(config: BenchConfig, workdir: Path) -> dict[str, Any]:
    """N signups through the real server; the real worker sends all 5 emails of each.

    Requests are split into each process's once-only costs (the server's start-up before it
    answers; the worker's start-up and lease claim before its first poll, and its lease release
    at shutdown) and the rest, which is what the emails cost."""
    _say(config, f"leads: {config.leads} signups × 5 emails through server.py and worker.py")
    catalog = workdir / "sequences.toml"
    catalog.write_text(_catalog_all_due_at_once())
    expected = config.leads * 5
    peaks: dict[str, int | None] = {}
    with Fakes(config) as fakes:
        mark = fakes.mark()
        started = time.monotonic()
        port = free_port()
        extra = {"PORT": str(port), "SEQUENCES_FILE": str(catalog)}
        with _server(fakes, workdir, **extra) as server:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, server)
            server_ready = fakes.mark()
            statuses: Counter[int] = Counter()
            for n in range(config.leads):
                response = httpx.post(
                    f"{url}/webhook/christmas-signup",
                    json={"email": f"lead{n}@example.com", "first_name": f"Lead{n}"},
                    timeout=30,
                )
                statuses[response.status_code] += 1
            wait_until(
                lambda: httpx.get(f"{url}/readyz", timeout=5).json()["journal_backlog"] == 0,
                config.timeout,
                "the intake journal to drain",
                0.25,
            )
            intake_done = time.monotonic()
            _say(config, f"leads: intake drained in {intake_done - started:.1f} s; worker sends")
            worker_start = fakes.mark()
            with running("worker.py", fakes.env(workdir, **extra), workdir) as worker:
                wait_until(
                    lambda: (
                        len(fakes.resend.sent) >= expected
                        and fakes.statuses().get("queued", 0) == 0
                    ),
                    config.timeout,
                    f"{expected} emails sent",
                    0.5,
                )
                time.sleep(0.5)  # let a last update land
                worker_stop = fakes.mark()
            peaks = {"server": server.peak_kib, "worker": worker.peak_kib}
        wall = time.monotonic() - started
        requests = fakes.since(mark)
        startup, sending, shutdown = _worker_phases(fakes, worker_start, worker_stop)
        once = [*fakes.notion.requests[mark:server_ready], *startup, *shutdown]
        emails_cost = [*fakes.notion.requests[server_ready:worker_start], *sending]
        sent = len(fakes.resend.sent)
        by_kind = _counts(emails_cost)
        total = len(requests)
        per_email = total / sent if sent else None
        steady = len(emails_cost) / sent if sent else None
        result = {
            "leads": config.leads,
            "webhook_statuses": {str(k): v for k, v in statuses.items()},
            "emails_sent": sent,
            "final_statuses": dict(fakes.statuses()),
            "notion_requests": total,
            "once_per_process_requests": len(once),
            "once_per_process_by_kind": _counts(once),
            "requests_by_kind": by_kind,
            "queries_by_data_source": fakes.query_split(emails_cost),
            "per_email_all_in": round(per_email, 3) if per_email is not None else None,
            "per_email": round(steady, 3) if steady is not None else None,
            "per_email_by_kind": {k: round(v / sent, 3) for k, v in by_kind.items()}
            if sent
            else {},
            "floor": FLOOR_PER_EMAIL,
            "ratio_to_floor": _ratio(steady, FLOOR_PER_EMAIL),
            "notion_429": sum(1 for r in requests if r.status == 429),
            "resend_429": fakes.resend.count(429),
            "wall_seconds": round(wall, 1),
            "peak_rss_kib": peaks,
        }
    _say(
        config,
        f"leads: {sent} sent, {result['per_email']} Notion requests/email "
        f"({result['per_email_all_in']} with {len(once)} once-per-process requests)",
    )
    return result


def bench_drain(config: BenchConfig, workdir: Path) -> dict[str, Any]:
    """A backlog of due rows: the real worker, then the baseline loop on a fresh copy."""
    n = config.backlog
    _say(config, f"drain: seeding {n} due rows")
    due = datetime.now(UTC) - timedelta(minutes=5)
    result: dict[str, Any] = {"rows": n, "ceiling_per_second": config.ceiling}
    product_fakes = Fakes(config)
    for row in _backlog_rows(n, due, "drain"):
        product_fakes.store.add_row(row)
    with product_fakes as fakes:
        mark = fakes.mark()
        started = time.monotonic()
        _say(config, f"drain: worker.py drains {n} rows")
        with running("worker.py", fakes.env(workdir), workdir) as worker:
            wait_until(
                lambda: len(fakes.resend.sent) >= n and fakes.statuses().get("queued", 0) == 0,
                config.timeout,
                f"{n} rows drained",
                0.5,
            )
            stopping = fakes.mark()
        wall = time.monotonic() - started
        requests = fakes.since(mark)
        startup, sending, shutdown = _worker_phases(fakes, mark, stopping)
        sent = len(fakes.resend.sent)
        rate = _send_rate([e.at for e in fakes.resend.sent])
        by_kind = _counts(requests)
        result["notion_queue"] = {
            "sent": sent,
            "final_statuses": dict(fakes.statuses()),
            "wall_seconds": round(wall, 1),
            "sends_per_second": round(rate, 3) if rate else None,
            "fraction_of_ceiling": _ratio(rate, config.ceiling),
            "notion_requests": len(requests),
            "requests_by_kind": by_kind,
            "once_per_process_requests": len(startup) + len(shutdown),
            "requests_per_email": round(len(sending) / sent, 3) if sent else None,
            "notion_429": sum(1 for r in requests if r.status == 429),
            "resend_429": fakes.resend.count(429),
            "peak_rss_kib": worker.peak_kib,
        }
    _say(config, f"drain: worker {result['notion_queue']['sends_per_second']} sends/s")

    baseline_fakes = Fakes(config)
    for row in _backlog_rows(n, due, "drain"):
        baseline_fakes.store.add_row(row)
    with baseline_fakes as fakes:
        _say(config, f"drain: baseline loop (query, then send + update each row) over {n} rows")
        mark = fakes.mark()
        started = time.monotonic()
        outcome = baseline_drain(fakes.notion_url, fakes.resend_url, fakes.queue_ds)
        wall = time.monotonic() - started
        requests = fakes.since(mark)
        sent = len(fakes.resend.sent)
        rate = _send_rate([e.at for e in fakes.resend.sent])
        result["baseline"] = {
            **outcome,
            "sent": sent,
            "final_statuses": dict(fakes.statuses()),
            "active_seconds": round(wall, 1),
            "sends_per_second": round(rate, 3) if rate else None,
            "fraction_of_ceiling": _ratio(rate, config.ceiling),
            "notion_requests": len(requests),
            "requests_by_kind": _counts(requests),
            "requests_per_email": round(len(requests) / sent, 3) if sent else None,
            "notion_429": sum(1 for r in requests if r.status == 429),
            "resend_429": fakes.resend.count(429),
            "note": (
                f"one pass per poll; the seed then sleeps {SEED_POLL_SLEEP:.0f} s, not counted "
                "in active_seconds"
            ),
        }
    _say(config, f"drain: baseline {result['baseline']['sends_per_second']} sends/s")
    return result


def baseline_drain(notion_url: str, resend_url: str, data_source_id: str) -> dict[str, Any]:
    """The seed's loop taken literally: query the due rows, then for each one send through Resend
    and mark it sent, sequentially, no pacing (the SDKs' defaults). The seed sleeps 60 s between
    polls; here the polls follow each other until the backlog is gone."""
    import resend
    from notion_client import Client

    notion = Client(auth=TOKEN, base_url=notion_url)
    resend.api_key = RESEND_KEY
    resend.api_url = resend_url
    polls = errors = 0
    try:
        while True:
            polls += 1
            now = datetime.now(UTC).isoformat()
            response: dict[str, Any] = notion.data_sources.query(  # type: ignore[assignment]
                data_source_id,
                filter={
                    "and": [
                        {"property": "Status", "select": {"equals": "queued"}},
                        {"property": "Scheduled Time", "date": {"on_or_before": now}},
                    ]
                },
            )
            rows = response.get("results", [])
            if not rows:
                break
            for page in rows:
                props = page["properties"]
                to = props["Email Address"]["email"]
                template = "".join(t["plain_text"] for t in props["Template ID"]["rich_text"])
                try:
                    sent = resend.Emails.send(
                        {
                            "from": "BusinessX <hello@businessx.com>",
                            "to": [to],
                            "subject": template,
                            "html": f"<p>{template}</p>",
                        }
                    )
                    notion.pages.update(
                        page_id=page["id"],
                        properties={
                            "Status": {"select": {"name": "sent"}},
                            "Sent At": {"date": {"start": datetime.now(UTC).isoformat()}},
                            "Resend Email ID": {"rich_text": [{"text": {"content": sent["id"]}}]},
                        },
                    )
                except Exception as exc:
                    errors += 1
                    notion.pages.update(
                        page_id=page["id"],
                        properties={
                            "Status": {"select": {"name": "failed"}},
                            "Error Message": {
                                "rich_text": [{"text": {"content": str(exc)[:1900]}}]
                            },
                        },
                    )
    finally:
        notion.close()
    return {"polls": polls, "errors": errors}


def baseline_poll(notion_url: str, data_source_id: str) -> int:
    """One idle poll of the seed's loop: its query; answers the number of rows it found."""
    from notion_client import Client

    notion = Client(auth=TOKEN, base_url=notion_url)
    try:
        now = datetime.now(UTC).isoformat()
        response: dict[str, Any] = notion.data_sources.query(  # type: ignore[assignment]
            data_source_id,
            filter={
                "and": [
                    {"property": "Status", "select": {"equals": "queued"}},
                    {"property": "Scheduled Time", "date": {"on_or_before": now}},
                ]
            },
        )
        return len(response.get("results", []))
    finally:
        notion.close()


def _seed_finished(fakes: Fakes, count: int, config: BenchConfig) -> None:
    """K rows with Status sent, through the store on the in-process transport (no pacing)."""
    now = datetime.now(UTC)
    started = time.monotonic()
    for n in range(count):
        when = now - timedelta(days=30, minutes=n)
        fakes.store.add_row(
            NewRow(
                email=f"done{n}@example.com",
                first_name=f"Done{n}",
                sequence="lead_nurture",
                email_number=1 + n % 5,
                template_id=f"lead_nurture_email_{1 + n % 5}",
                scheduled_time=when,
                dedupe_key=f"bench:done:{n}",
                status=Status.SENT,
                sent_at=when + timedelta(seconds=1),
            )
        )
        if n and n % 10_000 == 0:
            _say(config, f"idle: seeded {n} finished rows ({time.monotonic() - started:.0f} s)")


def idle_hour(fakes: Fakes, workdir: Path) -> dict[str, Any]:
    """The worker as worker.py wires it (its Templates jobs, its lease), in process on a fixed
    clock over an hour of polls at the default 60 s, against the same fake Notion: every
    request it makes while idle. A few seconds of the real process see only the Email Queue
    query: the Templates query comes at most each 30 s, the lease each 5 minutes and the
    counts' check each 10."""
    from notion_queue.clock import FakeClock
    from notion_queue.mail.outbox import OutboxMailer
    from notion_queue.settings import Settings
    from notion_queue.template_counts import TemplateCounts
    from notion_queue.wiring import build_worker

    from .idle_cost import idle_cost

    # The worker starts 10 minutes after the history was written, as from counted rows (the
    # once-per-process full recount of the counts, not counted anyway, would read every row).
    clock = FakeClock(datetime.now(UTC) + timedelta(minutes=10))
    client = build_client(TOKEN, "https://api.notion.com", transport=fakes.notion.transport())
    gateway = NotionGateway(client, clock, requests_per_second=100_000, burst=100_000)
    store = NotionStore(
        gateway,
        email_queue_db_id=fakes.ids["Email Queue"],
        templates_db_id=fakes.ids["Templates"],
        contacts_db_id=fakes.ids["Contacts"],
        workers_db_id=fakes.ids["Workers"],
    )
    folder = workdir / f"idle-hour-{uuid.uuid4().hex[:6]}"
    settings = Settings(
        queue_backend="notion",
        notion_token=TOKEN,  # type: ignore[arg-type]
        notion_email_queue_db_id=fakes.ids["Email Queue"],
        notion_templates_db_id=fakes.ids["Templates"],
        notion_contacts_db_id=fakes.ids["Contacts"],
        notion_workers_db_id=fakes.ids["Workers"],
        public_base_url="https://funnel.businessx.com",
        state_dir=folder / "state",
        poll_interval_seconds=60.0,
    )
    worker = build_worker(settings, clock, store, OutboxMailer(folder / "outbox", clock))
    worker.lease.holder = "bench/idle-hour"
    for job in worker.template_jobs:
        if isinstance(job, TemplateCounts):
            job.already_counted(clock.now())
    try:
        cost = idle_cost(worker, fakes.notion, clock, fakes.ds_names)
    finally:
        clock.set(datetime.now(UTC))  # the lease lapses now, not an hour ahead
        worker.lease.release()
        store.close()
    return {
        "polls": cost.polls,
        "poll_interval_seconds": cost.poll_interval,
        "requests": cost.requests,
        "requests_per_poll": round(cost.per_poll, 3),
        "requests_by_call": cost.by_call,
    }


def bench_idle(config: BenchConfig, workdir: Path) -> dict[str, Any]:
    """A running worker (polling every second) over an empty queue and over K finished rows:
    Notion requests per poll in steady state, and apart from them what start-up (data sources,
    lease claim) and shutdown (lease release) cost once per process. Then the same worker in
    process over an hour of 60 s polls on a fixed clock (idle_hour), every job counted."""
    k = config.finished_rows
    fakes = Fakes(config)
    result: dict[str, Any] = {"finished_rows": k, "window_seconds": config.idle_window}

    def polls(requests: list[RecordedRequest]) -> int:
        return fakes.query_split(requests).get("email_queue", 0)

    def one_poll(label: str) -> dict[str, Any]:
        mark = fakes.mark()
        env = fakes.env(workdir, POLL_INTERVAL_SECONDS="1")
        with running("worker.py", env, workdir) as worker:
            wait_until(lambda: polls(fakes.since(mark)) >= 1, 120, "the worker's first poll")
            time.sleep(0.5)  # the first poll's answer is in
            window = fakes.mark()
            time.sleep(config.idle_window)
            steady = fakes.notion.requests[window : fakes.mark()]
            stopping = fakes.mark()
        startup, _, shutdown = _worker_phases(fakes, mark, stopping)
        count = polls(steady)
        per_poll = round(len(steady) / count, 3) if count else None
        base_mark = fakes.mark()
        base_found = baseline_poll(fakes.notion_url, fakes.queue_ds)
        base_requests = fakes.since(base_mark)
        _say(config, f"idle: {label}: {per_poll} requests per poll ({count} polls)")
        return {
            "polls": count,
            "requests": len(steady),
            "requests_per_poll": per_poll,
            "requests_by_kind": _counts(steady),
            "startup_requests": _counts(startup),
            "shutdown_requests": _counts(shutdown),
            "notion_429": sum(1 for r in steady if r.status == 429),
            "baseline_requests": len(base_requests),
            "baseline_rows_found": base_found,
            "peak_rss_kib": worker.peak_kib,
        }

    def hour(label: str) -> dict[str, Any]:
        measured = idle_hour(fakes, workdir)  # outside `with fakes`: no rate limit, no latency
        _say(
            config,
            f"idle: {label}, an hour of 60 s polls (fixed clock, every job): "
            f"{measured['requests_per_poll']} requests per poll {measured['requests_by_call']}",
        )
        return measured

    with fakes:
        result["empty"] = one_poll("empty queue")
    result["empty"]["hour_at_default_poll"] = hour("empty queue")
    _say(config, f"idle: seeding {k} finished rows")
    _seed_finished(fakes, k, config)
    with fakes:
        result["full"] = one_poll(f"{k} finished rows")
    result["full"]["hour_at_default_poll"] = hour(f"{k} finished rows")
    empty = result["empty"]["requests_per_poll"]
    full = result["full"]["requests_per_poll"]
    result["growth"] = round(full - empty, 3) if empty is not None and full is not None else None
    return result


def bench_lateness(config: BenchConfig, workdir: Path) -> dict[str, Any]:
    """Lateness (Sent At − Scheduled Time) of rows scheduled while the worker idles between
    polls (POLL_INTERVAL_SECONDS), in two phases: M rows known one poll ahead (written just
    after a poll, due between one and two polls later, a few seconds apart), then, for
    contrast, M rows written just after a poll but due before the next one, which wait for it."""
    m = config.lateness_rows
    poll = config.lateness_poll
    _say(config, f"lateness: 2 × {m} rows scheduled while the worker idles (poll {poll:.0f} s)")
    phases = {
        "known": [poll + 3 + (poll - 6) * n / max(1, m - 1) for n in range(m)],
        "late": [2 + (poll - 4) * n / max(1, m - 1) for n in range(m)],
    }
    with Fakes(config) as fakes:
        env = fakes.env(workdir, POLL_INTERVAL_SECONDS=str(poll))
        mark = fakes.mark()
        with running("worker.py", env, workdir) as worker:
            # The first (empty) poll is done once the worker queried the Email Queue.
            wait_until(
                lambda: fakes.query_split(fakes.since(mark)).get("email_queue", 0) >= 1,
                60,
                "the worker's first poll",
            )
            for phase, offsets in phases.items():
                # Just after a poll: the first one, or the cycle that sent the last row.
                time.sleep(0.5)
                now = datetime.now(UTC)
                for n, ahead in enumerate(offsets):
                    fakes.store.add_row(
                        NewRow(
                            email=f"{phase}{n}@example.com",
                            first_name=f"Late{n}",
                            sequence="lead_nurture",
                            email_number=1,
                            template_id="lead_nurture_email_1",
                            scheduled_time=now + timedelta(seconds=ahead),
                            dedupe_key=f"bench:{phase}:{n}",
                            variables={"first_name": f"Late{n}"},
                        )
                    )
                wait_until(
                    lambda: fakes.statuses().get("queued", 0) == 0,
                    3 * poll + 60,
                    f"{m} scheduled rows sent",
                    0.1,
                )
        lateness: dict[str, list[float]] = {"known": [], "late": []}
        for page in fakes.notion.pages(fakes.queue_ds):
            props = page["properties"]
            sent_at, scheduled = props["Sent At"]["date"], props["Scheduled Time"]["date"]
            address = props["Email Address"]["email"] or ""
            phase = "known" if address.startswith("known") else "late"
            if sent_at and scheduled:
                delta = datetime.fromisoformat(sent_at["start"]) - datetime.fromisoformat(
                    scheduled["start"]
                )
                lateness[phase].append(delta.total_seconds())
        result: dict[str, Any] = {
            "rows": 2 * m,
            "poll_interval_seconds": poll,
            "sent": sum(len(v) for v in lateness.values()),
            "final_statuses": dict(fakes.statuses()),
            "notion_queue": _pcts(lateness["known"]),
            "written_less_than_a_poll_ahead": _pcts(lateness["late"]),
            "baseline": {
                **_pcts(_uniform_quantiles(SEED_POLL_SLEEP)),
                "note": (
                    f"modelled: the seed finds a row at its next poll, every {SEED_POLL_SLEEP:.0f}"
                    " s after the last, so lateness is uniform over [0, 60 s) plus the send"
                ),
            },
            "peak_rss_kib": worker.peak_kib,
        }
    _say(
        config,
        f"lateness: known a poll ahead p99 {result['notion_queue']['p99']} s; written less than"
        f" a poll ahead p99 {result['written_less_than_a_poll_ahead']['p99']} s",
    )
    return result


def bench_batch(config: BenchConfig, workdir: Path) -> dict[str, Any]:
    """SQLite + Resend: the worker sends due rows 100 a request (Resend's batch API)."""
    from notion_queue.store.sqlite import SqliteStore

    n = config.batch_rows
    _say(config, f"batch: seeding {n} due rows in SQLite")
    folder = workdir / f"batch-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    store = SqliteStore(folder / "queue.sqlite3")
    due = datetime.now(UTC) - timedelta(minutes=5)
    for row in _backlog_rows(n, due, "batch"):
        store.add_row(row)
    resend = FakeResend(api_key=RESEND_KEY, rate_limit=config.resend_rps, burst=config.resend_burst)
    resend.latency = config.resend_latency
    with resend.serve() as resend_url:
        env = {
            k: v for k, v in os.environ.items() if not k.upper().startswith(("NOTION_", "RESEND_"))
        }
        env.update(
            QUEUE_BACKEND="sqlite",
            MAIL_BACKEND="resend",
            SQLITE_PATH=str(folder / "queue.sqlite3"),
            RESEND_API_KEY=RESEND_KEY,
            RESEND_API_URL=resend_url,
            RESEND_REQUESTS_PER_SECOND=str(config.resend_rps),
            PUBLIC_BASE_URL="https://funnel.businessx.com",
            ALLOW_UNSIGNED_WEBHOOKS="true",
            STATE_DIR=str(folder / "state"),
            OUTBOX_DIR=str(folder / "outbox"),
            POLL_INTERVAL_SECONDS="1",
            LOG_FORMAT="json",
            LOG_LEVEL="warning",
        )

        def unsent() -> int:
            # One COUNT, not every row read back: the bench shares the CPU with the worker.
            with contextlib.closing(sqlite3.connect(folder / "queue.sqlite3")) as db:
                (count,) = db.execute(
                    "SELECT COUNT(*) FROM email_queue WHERE status != ?", (Status.SENT.value,)
                ).fetchone()
            return int(count)

        _say(config, f"batch: worker.py drains {n} rows at {config.resend_rps:g} requests/s")
        started = time.monotonic()
        with running("worker.py", env, folder) as worker:
            wait_until(lambda: unsent() == 0, config.timeout, f"{n} rows sent", 0.5)
            wall = time.monotonic() - started
    store.close()
    times = [e.at for e in resend.sent]
    rate = _send_rate(times)
    span = (max(times) - min(times)).total_seconds() if times else 0.0
    result = {
        "rows": n,
        "sent": len(resend.sent),
        "distinct_addresses": len({e.to[0] for e in resend.sent}),
        "resend_requests": resend.count(),
        "resend_429": resend.count(429),
        "emails_per_request": round(len(resend.sent) / max(1, resend.count(200)), 1),
        "emails_per_second": round(rate, 1) if rate else None,
        "send_span_seconds": round(span, 2),
        "wall_seconds_with_startup": round(wall, 1),
        "target_per_second": 150.0,
        "resend_requests_per_second": config.resend_rps,
        "peak_rss_kib": worker.peak_kib,
    }
    _say(config, f"batch: {result['emails_per_second']} emails/s")
    return result


def batch_markdown(batch: dict[str, Any]) -> str:
    verdict = (
        "meets" if (batch["emails_per_second"] or 0) >= batch["target_per_second"] else "MISSES"
    )
    return (
        f"\n## Batches (SQLite + Resend's batch API)\n\n"
        f"{batch['rows']} due rows, fake Resend at {batch['resend_requests_per_second']:g} "
        f"requests/s: **{_fmt(batch['emails_per_second'])} emails/s** "
        f"({verdict} the target of {batch['target_per_second']:g}/s); "
        f"{batch['resend_requests']} requests, {batch['emails_per_request']} emails each, "
        f"{batch['resend_429']} answered 429; {batch['distinct_addresses']} distinct addresses "
        f"for {batch['sent']} emails sent.\n"
    )


def _uniform_quantiles(width: float) -> list[float]:
    return [width * (i + 0.5) / 1000 for i in range(1000)]


def _pcts(values: list[float]) -> dict[str, float | None]:
    def r(v: float | None) -> float | None:
        return round(v, 3) if v is not None else None

    return {
        "p50": r(percentile(values, 50)),
        "p95": r(percentile(values, 95)),
        "p99": r(percentile(values, 99)),
        "max": r(max(values) if values else None),
    }


def bench_intake(config: BenchConfig, workdir: Path) -> dict[str, Any]:
    """Webhook POSTs at a fixed rate from a separate load process (load.py),
    while the server's drainer writes to the rate-limited fake Notion."""
    total = max(1, round(config.intake_rate * config.intake_seconds))
    _say(config, f"intake: {total} POSTs at {config.intake_rate:.0f}/s")
    with Fakes(config) as fakes:
        port = free_port()
        with _server(fakes, workdir, PORT=str(port)) as server:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, server)
            load = subprocess.run(
                [
                    sys.executable,
                    str(HARNESS / "load.py"),
                    f"{url}/webhook/christmas-signup",
                    str(config.intake_rate),
                    str(config.intake_seconds),
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=workdir,
                timeout=config.intake_seconds + 120,
            )
            backlog = httpx.get(f"{url}/readyz", timeout=10).json()["journal_backlog"]
        measured = json.loads(load.stdout)
        latencies = [v / 1000 for v in measured["latencies_ms"]]
        result = {
            "rate_per_second": config.intake_rate,
            "seconds": config.intake_seconds,
            "requests": measured["requests"],
            "warmup_requests": measured["warmup_requests"],
            "statuses": measured["statuses"],
            "p50_ms": _ms(percentile(latencies, 50)),
            "p99_ms": _ms(percentile(latencies, 99)),
            "max_ms": _ms(max(latencies) if latencies else None),
            "journal_backlog_after": backlog,
            "peak_rss_kib": server.peak_kib,
        }
    _say(config, f"intake: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    return result


def _ms(value: float | None) -> float | None:
    return round(value * 1000, 2) if value is not None else None


# ------------------------------------------------------------------------------------ report


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    else:
        text = str(value)
    return f"{text}{unit}"


def _idle_rows(idle: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The idle figures: every request over an hour of default polls (the goal's measure),
    then the Email Queue poll alone as a running process shows it in a few seconds."""
    full, empty = idle["full"], idle["empty"]
    rows: list[tuple[str, str, str, str, str]] = []
    hour, empty_hour = full.get("hour_at_default_poll"), empty.get("hour_at_default_poll")
    if hour and empty_hour:
        per_poll = hour["requests_per_poll"]
        rows.append(
            (
                f"Idle worker, Notion requests per 60 s poll over an hour, every job "
                f"({idle['finished_rows']} finished rows)",
                f"{_fmt(per_poll)} (empty queue: {_fmt(empty_hour['requests_per_poll'])})",
                _fmt(full["baseline_requests"]),
                "1, whatever the database holds",
                ("met" if per_poll <= 1 else f"not met: {_fmt(per_poll)}")
                + (
                    ", no growth"
                    if per_poll <= empty_hour["requests_per_poll"]
                    else ", grows with history"
                ),
            )
        )
        rows.append(
            (
                f"  by call, per hour ({hour['polls']} polls)",
                ", ".join(f"{k} {v}" for k, v in hour["requests_by_call"].items()),
                "",
                "",
                "",
            )
        )
    rows.append(
        (
            f"  a running worker.py polling each second, {_fmt(full['polls'])} polls",
            f"{_fmt(full['requests_per_poll'])} (empty queue: {_fmt(empty['requests_per_poll'])})",
            "",
            "",
            "no growth" if (idle["growth"] or 0) <= 0 else f"grows by {idle['growth']}",
        )
    )
    return rows


def markdown(results: dict[str, Any]) -> str:
    leads, drain = results["requests_per_email"], results["drain"]
    idle, late, intake = results["idle_poll"], results["lateness"], results["intake"]
    rss, cfg = results["rss"], results["config"]
    nq, bl = drain["notion_queue"], drain["baseline"]
    ceiling = drain["ceiling_per_second"]
    rows: list[tuple[str, str, str, str, str]] = [
        (
            f"Notion requests per sent email ({leads['leads']} new leads × 5 emails)",
            _fmt(leads["per_email"]),
            "n/a (seed intake not modelled)",
            f"floor {leads['floor']:.1f}, ≤ {leads['floor'] * 1.05:.2f} (5 %)",
            f"{_fmt(leads['ratio_to_floor'])}× floor",
        ),
        (
            "  the same with the processes' once-only requests",
            f"{_fmt(leads['per_email_all_in'])} ({leads['once_per_process_requests']} requests: "
            + ", ".join(f"{k} {v}" for k, v in leads["once_per_process_by_kind"].items())
            + ")",
            "",
            "",
            "",
        ),
        (
            "  by kind (per email)",
            ", ".join(f"{k} {v}" for k, v in leads["per_email_by_kind"].items()),
            "",
            "creates 1, updates 1, other 0.4",
            "",
        ),
        (
            "  Notion 429s received (leads run)",
            _fmt(leads["notion_429"]),
            "",
            "0",
            "ok" if leads["notion_429"] == 0 else "429s seen",
        ),
        (
            f"Send-side Notion requests per email (backlog of {drain['rows']})",
            _fmt(nq["requests_per_email"]),
            _fmt(bl["requests_per_email"]),
            "≈ 1 (one update)",
            f"{_fmt(_ratio(nq['requests_per_email'], bl['requests_per_email']))}× baseline",
        ),
        (
            "  Notion 429s received (drain)",
            _fmt(nq["notion_429"]),
            _fmt(bl["notion_429"]),
            "0",
            "",
        ),
        *_idle_rows(idle),
        (
            "  worker start-up (before its first poll) / shutdown, once per process",
            ", ".join(f"{k} {v}" for k, v in idle["full"]["startup_requests"].items())
            + " / "
            + (", ".join(f"{k} {v}" for k, v in idle["full"]["shutdown_requests"].items()) or "0"),
            "",
            "",
            "",
        ),
        (
            f"Drain throughput, sends/s (ceiling {ceiling:g}/s)",
            _fmt(nq["sends_per_second"]),
            _fmt(bl["sends_per_second"]),
            f"{ceiling:g}",
            f"{_fmt(nq['fraction_of_ceiling'])} of ceiling "
            f"(baseline {_fmt(bl['fraction_of_ceiling'])})",
        ),
        (
            f"Drain outcome, {drain['rows']} rows (sent / failed; Resend 429s)",
            f"{nq['sent']} / {nq['final_statuses'].get('failed', 0)}; {nq['resend_429']}",
            f"{bl['sent']} / {bl['final_statuses'].get('failed', 0)}; {bl['resend_429']}",
            f"{drain['rows']} / 0",
            "",
        ),
        (
            f"Drain wall time, {drain['rows']} rows",
            _fmt(nq["wall_seconds"], " s"),
            _fmt(bl["active_seconds"], " s") + f" + {max(0, bl['polls'] - 1)}×60 s sleeps",
            f"{drain['rows'] / ceiling:.3g} s",
            "",
        ),
    ]
    for q in ("p50", "p95", "p99"):
        ours, theirs = late["notion_queue"][q], late["baseline"][q]
        rows.append(
            (
                f"Lateness {q}, rows known a poll ahead (poll {late['poll_interval_seconds']:g} s)",
                _fmt(ours, " s"),
                _fmt(theirs, " s") + " (modelled)",
                "p99 ≤ 2 s",
                f"{_fmt(_ratio(ours, theirs))}× baseline",
            )
        )
    unknown = late["written_less_than_a_poll_ahead"]
    rows.append(
        (
            "  rows written less than a poll before due, p50 / p99",
            f"{_fmt(unknown['p50'], ' s')} / {_fmt(unknown['p99'], ' s')}",
            "",
            "wait for the next poll",
            "",
        )
    )
    for q in ("p50", "p99"):
        rows.append(
            (
                f"Webhook intake latency {q} ({intake['rate_per_second']:g}/s for "
                f"{intake['seconds']:g} s)",
                _fmt(intake[f"{q}_ms"], " ms"),
                "n/a",
                "p99 ≤ 25 ms" if q == "p99" else "",
                f"statuses {intake['statuses']}",
            )
        )
    for role in ("server", "worker"):
        kib = rss[f"{role}_peak_kib"]
        rows.append(
            (
                f"Peak RSS, {role}",
                _fmt(round(kib / 1024, 1) if kib else None, " MiB"),
                "n/a",
                "",
                "",
            )
        )
    header = "| metric | notion-queue | baseline | target | ratio/verdict |\n| --- | --- | --- | --- | --- |"
    body = "\n".join("| " + " | ".join(cell.replace("|", "/") for cell in r) + " |" for r in rows)
    limits = (
        f"Fake Notion {cfg['notion_rps']:g} rps (burst {cfg['notion_burst']:g}), latency "
        f"{cfg['notion_latency'][0] * 1000:g}–{cfg['notion_latency'][1] * 1000:g} ms; fake Resend "
        f"{cfg['resend_rps']:g} rps (burst {cfg['resend_burst']:g}); "
        f"run took {results['wall_seconds']:.0f} s."
    )
    notes = "\n".join(
        f"- {note}"
        for note in (
            "Ceiling (the issue's): min(fake Notion rate, fake Resend rate) sends/s.",
            "Baseline: the seed's loop taken literally (query, then send + update each row, "
            "sequentially, SDK defaults, no pacing); " + bl["note"] + ".",
            "Baseline lateness is modelled from its fixed 60 s sleep, not measured.",
            "Requests per email count intake and sending; once-per-process requests (data "
            "source lookups at start-up, the worker's lease claim and release) are shown apart.",
            "Intake latency is measured from a separate load process after "
            f"{intake.get('warmup_requests', 0)} warm-up requests.",
        )
    )
    return f"# notion-queue benchmark\n\n{limits}\n\n{header}\n{body}\n\n{notes}\n"


# ------------------------------------------------------------------------------------ entry


def _numbers(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None) -> tuple[BenchConfig, Path]:
    config, out, _, _ = parse_all(argv)
    return config, out


def parse_all(
    argv: list[str] | None,
) -> tuple[BenchConfig, Path, embedded.EmbeddedConfig, str]:
    """The config, the output folder, the embedded section's config, and which sections run:
    "all", "embedded" (`--embedded-only`) or "notion" (`--skip-embedded`)."""
    parser = argparse.ArgumentParser(
        prog="bench", description="Benchmark the real server and worker against the fakes."
    )
    parser.add_argument("--quick", action="store_true", help="small numbers, scaled-up limits")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    defaults = BenchConfig()
    for name, value in asdict(defaults).items():
        if name == "quiet":
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, tuple):
            parser.add_argument(flag, type=float, nargs=2, metavar=("LO", "HI"), default=None)
        else:
            parser.add_argument(flag, type=type(value), default=None)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--embedded-only", action="store_true", help="only the embedded section")
    parser.add_argument("--skip-embedded", action="store_true", help="all but the embedded one")
    parser.add_argument("--drain-sizes", type=_numbers, default=None, help="e.g. 1000,10000")
    parser.add_argument("--intake-rates", type=_numbers, default=None, help="e.g. 100,300,500")
    parser.add_argument("--embedded-intake-seconds", type=float, default=None)
    parser.add_argument("--first-email-signups", type=int, default=None)
    args = parser.parse_args(argv)
    emb = embedded.QUICK_EMBEDDED if args.quick else embedded.EmbeddedConfig()
    emb = embedded.EmbeddedConfig(
        drain_sizes=[int(n) for n in args.drain_sizes] if args.drain_sizes else emb.drain_sizes,
        fsync_files=emb.fsync_files,
        intake_rates=args.intake_rates or emb.intake_rates,
        intake_seconds=args.embedded_intake_seconds or emb.intake_seconds,
        first_email_signups=args.first_email_signups or emb.first_email_signups,
        first_email_poll=emb.first_email_poll,
    )
    sections = "embedded" if args.embedded_only else "notion" if args.skip_embedded else "all"
    values: dict[str, Any] = asdict(defaults)
    if args.quick:
        values.update(QUICK)
    for name in values:
        given = getattr(args, name, None)
        if given is not None and given is not False:
            values[name] = tuple(given) if isinstance(given, list) else given
    return BenchConfig(**values), args.out, emb, sections


def bench_embedded(
    config: BenchConfig, emb: embedded.EmbeddedConfig, workdir: Path
) -> dict[str, Any]:
    """The embedded default's section, and the first email on Notion for comparison."""

    def say(message: str) -> None:
        _say(config, message)

    result: dict[str, Any] = {"config": asdict(emb)}
    result["drain"] = embedded.bench_drain(emb, workdir / "embedded-drain", say)
    result["intake"] = embedded.bench_intake(emb, workdir / "embedded-intake", say, running)
    say("embedded: first email on the embedded default")
    folder = workdir / "first-embedded"
    folder.mkdir()
    result["first_email_embedded"] = embedded.first_email(
        emb,
        embedded.embedded_env(folder),
        folder,
        embedded.outbox_count(folder / "outbox"),
        running,
    )
    say("embedded: first email on Notion (fakes at their real limits)")
    real = BenchConfig(**{**asdict(config), **REAL_LIMITS})
    with Fakes(real) as fakes:
        folder = workdir / "first-notion"
        folder.mkdir()
        result["first_email_notion"] = embedded.first_email(
            emb, fakes.env(folder), folder, lambda: len(fakes.resend.sent), running
        )
        result["first_email_notion"]["notion_requests"] = len(fakes.notion.requests)
    return result


# Notion's and Resend's real limits and latencies (BenchConfig's defaults), for --quick too.
REAL_LIMITS = {
    name: getattr(BenchConfig(), name)
    for name in (
        "notion_rps",
        "notion_burst",
        "notion_latency",
        "resend_rps",
        "resend_burst",
        "resend_latency",
    )
}


def run(
    config: BenchConfig,
    out: Path,
    emb: embedded.EmbeddedConfig | None = None,
    sections: str = "all",
) -> dict[str, Any]:
    started = time.monotonic()
    if config.only == "batch":
        with tempfile.TemporaryDirectory(prefix="notion-queue-bench-") as tmp:
            batch = bench_batch(config, Path(tmp))
        only: dict[str, Any] = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": asdict(config),
            "batch": batch,
            "wall_seconds": round(time.monotonic() - started, 1),
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(only, indent=2) + "\n")
        (out / "results.md").write_text("# notion-queue benchmark\n" + batch_markdown(batch))
        return only
    if config.only:
        raise SystemExit(f"bench: --only={config.only!r}: the one scenario to run alone is batch")
    if sections == "embedded":
        with tempfile.TemporaryDirectory(prefix="notion-queue-bench-") as tmp:
            only = bench_embedded(config, emb or embedded.EmbeddedConfig(), Path(tmp))
        written: dict[str, Any] = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "embedded": only,
            "wall_seconds": round(time.monotonic() - started, 1),
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(written, indent=2) + "\n")
        (out / "results.md").write_text(embedded_markdown(only))
        return written
    with tempfile.TemporaryDirectory(prefix="notion-queue-bench-") as tmp:
        workdir = Path(tmp)
        leads = bench_leads(config, workdir)
        drain = bench_drain(config, workdir)
        idle = bench_idle(config, workdir)
        lateness = bench_lateness(config, workdir)
        intake = bench_intake(config, workdir)
        batch = bench_batch(config, workdir)
        section = (
            bench_embedded(config, emb or embedded.EmbeddedConfig(), workdir)
            if sections == "all"
            else None
        )
    worker_peaks = [
        leads["peak_rss_kib"].get("worker"),
        drain["notion_queue"]["peak_rss_kib"],
        idle["empty"]["peak_rss_kib"],
        idle["full"]["peak_rss_kib"],
        lateness["peak_rss_kib"],
    ]
    server_peaks = [leads["peak_rss_kib"].get("server"), intake["peak_rss_kib"]]
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": asdict(config),
        "requests_per_email": leads,
        "drain": drain,
        "idle_poll": idle,
        "lateness": lateness,
        "intake": intake,
        "batch": batch,
        "rss": {
            "server_peak_kib": max((p for p in server_peaks if p), default=None),
            "worker_peak_kib": max((p for p in worker_peaks if p), default=None),
            "note": "VmHWM of the server.py and worker.py processes, the highest over scenarios",
        },
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    if section is not None:
        results["embedded"] = section
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results) + batch_markdown(batch)
    if section is not None:
        text += "\n" + embedded_markdown(section)
    (out / "results.md").write_text(text)
    return results


def embedded_markdown(section: dict[str, Any]) -> str:
    drain = section["drain"]
    loop = drain["fsync_loop"]
    lines = [
        "## Embedded default (SQLite queue, outbox folder)",
        "",
        f"fsync loop (the machine's limit): {loop['files_per_second']} files/s "
        f"({loop['bytes_per_file']} bytes each)",
        "",
        "| drain rows | CPU ms/email | emails/s | ratio to fsync loop | peak RSS MiB |",
        "| --- | --- | --- | --- | --- |",
    ]
    for d in drain["drains"]:
        lines.append(
            f"| {d['rows']} | {d['cpu_ms_per_email']} | {d['emails_per_second']} | "
            f"{d['ratio_to_fsync_loop']} | {d['peak_rss_kib'] / 1024:.0f} |"
        )
    lines += [
        "",
        f"CPU per email, largest size ÷ smallest: {drain['cpu_growth']} (goal ≤ 1.2)",
        "",
        "| intake events/s | 202 p99 ms | lag p99 s | refused | backlog max | drained after s "
        "| CPU stolen by the host % |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i in section["intake"]:
        lines.append(
            f"| {i['rate_per_second']:g} | {i['p99_ms']} | {i['lag_p99_seconds']} | "
            f"{i['refused']} | {i['backlog_max']} | "
            f"{i['drained_seconds_after_load'] or str(i['backlog_left']) + ' left'} | "
            f"{i.get('cpu_steal_percent', '')} |"
        )
    for name in ("embedded", "notion"):
        first = section[f"first_email_{name}"]
        lines.append("")
        lines.append(
            f"First email on {name}: p99 {first['p99_seconds']} s over {first['signups']} "
            f"signups (poll {first['poll_seconds']:g} s): {first['latencies_seconds']}"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    if "--postgres" in (sys.argv[1:] if argv is None else argv):  # the PostgreSQL queue's own
        from .bench_postgres import main as bench_postgres

        return bench_postgres(argv)
    config, out, emb, sections = parse_all(argv)
    run(config, out, emb, sections)
    if not config.quiet:
        print((out / "results.md").read_text())
    print(f"wrote {out / 'results.json'}")
    print(f"wrote {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Three real worker.py processes on PostgreSQL sending through Resend's batch API (the fake
Resend on loopback, 2 requests/s): the worker whose batch Resend accepts first is SIGKILLed
before it hears the answer, so before it marks a row. Another worker takes the batch over once
its hold lapses and sends exactly that batch again (same key: Resend answers with the first
ids); every row goes out exactly once."""

from __future__ import annotations

import json
import os
import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from notion_queue.models import Status
from notion_queue.store.postgres import PostgresStore
from notion_queue.testing.fake_resend import FakeResend
from scripts.harness.processes import Service, process_group, wait_until
from tests.conftest import T0, new_row

ROWS = 400
WORKERS = 3
HOLD_SECONDS = 3.0  # CLAIM_TTL_SECONDS: short, so the take-over comes within the test


def test_a_worker_killed_after_resend_took_its_batch_loses_and_doubles_nothing(
    postgres_store: PostgresStore, tmp_path: Path
) -> None:
    for n in range(ROWS):
        postgres_store.add_row(
            new_row(email=f"reader{n:03d}@example.com", scheduled_time=T0 + timedelta(seconds=n))
        )
    postgres_store.connect()
    fake = FakeResend(api_key="re_test_key", rate_limit=2, burst=2)
    workers: dict[int, Service] = {}
    killed: dict[str, Any] = {}
    kill_lock = threading.Lock()
    real_dispatch = fake._dispatch

    def kill_the_sender_of_the_first_batch(request: httpx.Request, *, served: bool) -> Any:
        response = real_dispatch(request, served=served)
        if request.url.path == "/emails/batch" and response.status_code == 200:
            with kill_lock:
                if not killed:
                    key = request.headers["Idempotency-Key"]
                    held = postgres_store._query(
                        "SELECT held_by FROM pending_batches WHERE idempotency_key = %s", (key,)
                    )
                    victim = workers[int(held[0]["held_by"].split("/")[1])]
                    victim.send_signal(signal.SIGKILL)  # before it hears Resend's answer
                    victim.wait(timeout=10)
                    killed.update(
                        key=key,
                        holder=held[0]["held_by"],
                        rows=len(json.loads(request.content)),
                        marked=postgres_store._query(
                            "SELECT COUNT(*) AS n FROM email_queue"
                            " WHERE batch_key = %s AND status = %s",
                            (key, Status.SENT.value),
                        )[0]["n"],
                        in_batch=postgres_store._query(
                            "SELECT COUNT(*) AS n FROM email_queue WHERE batch_key = %s", (key,)
                        )[0]["n"],
                    )
        return response

    fake._dispatch = kill_the_sender_of_the_first_batch  # type: ignore[method-assign]
    with fake.serve() as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTION_", "RESEND_"))}
        env.update(
            QUEUE_BACKEND="postgres",
            DATABASE_URL=postgres_store._url,
            CLAIM_TTL_SECONDS=str(HOLD_SECONDS),
            MAIL_BACKEND="resend",
            RESEND_API_KEY="re_test_key",
            RESEND_API_URL=url,
            RESEND_REQUESTS_PER_SECOND="2",  # the account's: the workers share it
            PUBLIC_BASE_URL="https://funnel.businessx.com",
            ALLOW_UNSIGNED_WEBHOOKS="true",
            STATE_DIR=str(tmp_path / "state"),
            POLL_INTERVAL_SECONDS="1",
            LOG_FORMAT="json",
        )
        with process_group(tmp_path, env) as procs:
            for n in range(WORKERS):
                worker = procs.start("worker.py", log_name=f"worker{n}.log")
                workers[worker.pid] = worker
            wait_until(lambda: _sent_count(postgres_store) == ROWS, 120, "every row sent", 0.2)
            survivors = [w for w in workers.values() if w.alive()]
            logs = "\n".join(w.log_text() for w in workers.values())
        assert len(survivors) == WORKERS - 1, logs
        assert all(w.returncode == 0 for w in survivors), logs

    # The batch's rows were held for it, and its worker died before marking any of them.
    assert killed["rows"] == killed["in_batch"] == 100 and killed["marked"] == 0, killed
    addresses = [email.to[0] for email in fake.sent]
    assert len(addresses) == len(set(addresses)) == ROWS  # 0 duplicates, 0 lost
    replays = [r for r in fake.requests if r.replayed]
    assert [(r.path, r.idempotency_key) for r in replays] == [("/emails/batch", killed["key"])]
    taken_over = [
        event
        for event in map(json.loads, filter(lambda line: line.startswith("{"), logs.splitlines()))
        if event.get("event") == "batch_taken_over"
    ]
    assert [(e["key"], e["previous_holder"]) for e in taken_over] == [
        (killed["key"], killed["holder"])
    ]
    ids = {email.to[0]: email.id for email in fake.sent}
    assert all(row.resend_email_id == ids[row.email] for row in postgres_store.all_rows())
    assert postgres_store._query("SELECT * FROM pending_batches") == []


def _sent_count(store: PostgresStore) -> int:
    found = store._query(
        "SELECT COUNT(*) AS n FROM email_queue WHERE status = %s", (Status.SENT.value,)
    )
    return int(found[0]["n"])

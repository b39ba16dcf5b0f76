"""The real worker.py (SQLite + Resend's batch API, against the fake Resend on loopback) killed
with SIGKILL right after Resend accepted a batch, before it marked the rows: restarted, it sends
that batch again as it was and every row goes out exactly once."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path

from notion_queue.models import Status
from notion_queue.store.sqlite import SqliteStore
from notion_queue.testing.fake_resend import FakeResend
from scripts.harness.processes import Service, wait_until
from tests.conftest import T0, new_row

ROWS = 250


def test_a_worker_killed_mid_batch_sends_every_row_exactly_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "queue.sqlite3")
    for n in range(ROWS):
        store.add_row(
            new_row(email=f"reader{n:03d}@example.com", scheduled_time=T0 + timedelta(seconds=n))
        )
    fake = FakeResend(api_key="re_test_key", rate_limit=2, burst=2)
    with fake.serve() as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTION_", "RESEND_"))}
        env.update(
            QUEUE_BACKEND="sqlite",
            MAIL_BACKEND="resend",
            SQLITE_PATH=str(tmp_path / "queue.sqlite3"),
            RESEND_API_KEY="re_test_key",
            RESEND_API_URL=url,
            PUBLIC_BASE_URL="https://funnel.businessx.com",
            ALLOW_UNSIGNED_WEBHOOKS="true",
            STATE_DIR=str(tmp_path / "state"),
            POLL_INTERVAL_SECONDS="1",
            LOG_FORMAT="json",
        )
        pending = tmp_path / "state" / "batches"
        worker = Service("worker.py", env, tmp_path, tmp_path / "worker.log")
        try:
            # The first batch accepted: killed before its rows are marked.
            wait_until(lambda: len(fake.sent) >= 100, 60, "the first batch sent", 0.002)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        finally:
            worker.stop()
        marked = sum(1 for r in store.all_rows() if r.status is Status.SENT)
        assert marked < 100 and len(list(pending.glob("*.json"))) == 1, (marked, worker.log_text())

        worker = Service("worker.py", env, tmp_path, tmp_path / "worker.log")
        try:
            wait_until(
                lambda: all(r.status is Status.SENT for r in store.all_rows()),
                120,
                "every row sent",
                0.2,
            )
        finally:
            assert worker.stop() == 0, worker.log_text()

    addresses = [email.to[0] for email in fake.sent]
    assert len(addresses) == len(set(addresses)) == ROWS  # 0 duplicates, 0 lost
    replays = [r for r in fake.requests if r.replayed]
    assert len(replays) == 1 and replays[0].path == "/emails/batch"
    ids = {email.to[0]: email.id for email in fake.sent}
    assert all(row.resend_email_id == ids[row.email] for row in store.all_rows())
    assert list(pending.glob("*.json")) == []
    store.close()

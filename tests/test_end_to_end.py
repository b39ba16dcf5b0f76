"""The real server and worker processes, as a user runs them: on the embedded default, and on
Notion and Resend (the fakes served on 127.0.0.1)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest

from notion_queue.clock import SystemClock
from notion_queue.notion_setup import NotionSetup
from notion_queue.store.notion_gateway import NotionGateway, build_client
from notion_queue.testing.fake_notion import FakeNotion
from notion_queue.testing.fake_resend import FakeResend
from scripts.harness.processes import Service, free_port, run_script, running, wait_until

SIGNUP = {"email": "sarah@example.com", "first_name": "Sarah"}


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTION_", "RESEND_"))}
    env.update(
        SQLITE_PATH=str(tmp_path / "queue.sqlite3"),
        OUTBOX_DIR=str(tmp_path / "outbox"),
        STATE_DIR=str(tmp_path / "state"),
        QUEUE_BACKEND="sqlite",
        MAIL_BACKEND="outbox",
        POLL_INTERVAL_SECONDS="1",
        LOG_FORMAT="json",
    )
    env.update(extra)
    return env


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = base_env(tmp_path, PORT=str(port))
    yield from _run_server(env, port, tmp_path)


def _run_server(
    env: dict[str, str], port: int, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str]]]:
    process = Service("server.py", env, tmp_path, tmp_path / "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/healthz").status_code == 200)
        yield url, env
    finally:
        code = process.stop()
    assert code == 0, process.log_text()


def run_worker_once(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_script("worker.py", "--once", env=env, cwd=cwd)


def drained(url: str) -> bool:
    return bool(httpx.get(f"{url}/readyz").json()["journal_backlog"] == 0)


def test_quick_start_on_the_embedded_default(
    server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, env = server
    response = httpx.post(f"{url}/webhook/christmas-signup", json=SIGNUP)
    assert response.status_code == 202 and response.json()["event_id"].startswith("evt_")
    wait_until(lambda: drained(url))

    result = run_worker_once(env, tmp_path)

    assert result.returncode == 0, result.stderr
    emails = list((tmp_path / "outbox").glob("*.eml"))
    assert len(emails) == 1
    message = message_from_bytes(emails[0].read_bytes())
    assert message["To"] == "sarah@example.com"
    assert message["Message-ID"] and message["Date"] and message["Subject"]
    types = {part.get_content_type() for part in message.walk()}
    assert {"text/plain", "text/html"} <= types
    with sqlite3.connect(tmp_path / "queue.sqlite3") as db:
        statuses = db.execute(
            "SELECT template_id, status FROM email_queue ORDER BY scheduled_time"
        ).fetchall()
    assert statuses == [("lead_nurture_email_1", "sent")] + [
        (f"lead_nurture_email_{n}", "queued") for n in range(2, 6)
    ]
    status = subprocess.run(
        [sys.executable, "-m", "notion_queue.cli", "status"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "5 rows: 4 queued, 1 sent" in status
    assert "Next due: lead_nurture_email_2 → sarah@example.com" in status
    metrics = httpx.get(f"{url}/metrics").text
    assert "notion_queue_journal_backlog 0.0" in metrics


def test_worker_serves_metrics_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    metrics_port = free_port()
    env = base_env(tmp_path, METRICS_PORT=str(metrics_port))
    with running("worker.py", env, tmp_path, tmp_path / "worker.log") as process:
        wait_until(lambda: any((tmp_path / "state").glob("worker-*.lock")))
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").status_code == 200)
        assert "notion_queue_sending_paused" in httpx.get(f"http://127.0.0.1:{metrics_port}/").text
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    log = process.log_text()
    assert process.returncode == 0, log
    assert '"event": "worker_stopped"' in log


def test_a_worker_sent_sigterm_twice_at_once_still_stops_cleanly(tmp_path: Path) -> None:
    """`make run` and systemd may both signal the worker: the second SIGTERM can arrive while the
    first one's handler runs (a handler that logged could then wait for ever on the log's lock)."""
    env = base_env(tmp_path)
    with running("worker.py", env, tmp_path, tmp_path / "worker.log") as process:
        wait_until(lambda: '"event": "worker_started"' in process.log_text())
        for _ in range(5):
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    log = process.log_text()
    assert process.returncode == 0, log
    assert '"event": "stopped_by_signal"' in log and '"signal": "SIGTERM"' in log


def test_missing_notion_setting_is_one_clear_line(tmp_path: Path) -> None:
    env = base_env(tmp_path, QUEUE_BACKEND="notion", NOTION_TOKEN="secret_x")
    result = run_worker_once(env, tmp_path)

    assert result.returncode == 2
    assert result.stderr.strip() == (
        "notion-queue: configuration error: "
        "NOTION_EMAIL_QUEUE_DB_ID is required when QUEUE_BACKEND=notion"
    )


def test_with_notion_and_resend(tmp_path: Path) -> None:
    fake_notion = FakeNotion(token="secret_e2e_notion_token")
    fake_resend = FakeResend(api_key="re_e2e_key", rate_limit=None)
    parent = fake_notion.create_parent_page()
    gateway = NotionGateway(
        build_client(
            "secret_e2e_notion_token", "https://api.notion.com", transport=fake_notion.transport()
        ),
        SystemClock(),
    )
    ids = NotionSetup(gateway).run(parent).database_ids
    port = free_port()
    with fake_notion.serve() as notion_url, fake_resend.serve() as resend_url:
        env = base_env(
            tmp_path,
            PORT=str(port),
            QUEUE_BACKEND="notion",
            MAIL_BACKEND="resend",
            NOTION_TOKEN="secret_e2e_notion_token",
            NOTION_API_BASE_URL=notion_url,
            NOTION_EMAIL_QUEUE_DB_ID=ids["Email Queue"],
            NOTION_TEMPLATES_DB_ID=ids["Templates"],
            NOTION_CONTACTS_DB_ID=ids["Contacts"],
            NOTION_WORKERS_DB_ID=ids["Workers"],
            RESEND_API_KEY="re_e2e_key",
            RESEND_API_URL=resend_url,
            PUBLIC_BASE_URL="https://funnel.businessx.com",  # production refuses localhost
            ALLOW_UNSIGNED_WEBHOOKS="true",
        )
        for url, _ in _run_server(env, port, tmp_path):
            assert httpx.post(f"{url}/webhook/christmas-signup", json=SIGNUP).status_code == 202
            wait_until(lambda url=url: drained(url))
        result = run_worker_once(env, tmp_path)

    assert result.returncode == 0, result.stderr
    assert [e.to for e in fake_resend.sent] == [("sarah@example.com",)]
    assert fake_resend.sent[0].idempotency_key
    assert "secret_e2e_notion_token" not in result.stderr and "re_e2e_key" not in result.stderr
    queue_ds = gateway.client.databases.retrieve(database_id=ids["Email Queue"])["data_sources"][0][
        "id"
    ]
    pages = fake_notion.pages(queue_ds)
    statuses = sorted(p["properties"]["Status"]["select"]["name"] for p in pages)
    assert statuses == ["queued"] * 4 + ["sent"]


def test_a_second_worker_on_the_same_queue_refuses_to_start(tmp_path: Path) -> None:
    env = base_env(tmp_path, POLL_INTERVAL_SECONDS="30")
    first = Service("worker.py", env, tmp_path, tmp_path / "first-worker.log")
    try:
        wait_until(lambda: any((tmp_path / "state").glob("worker-*.lock")))
        time.sleep(0.5)
        second = run_worker_once(env, tmp_path)
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=10)

    assert second.returncode == 2
    assert "another worker already serves SQLite queue" in second.stderr
    assert f'"pid": {first.pid}' in second.stderr
    # Once the first is gone, a new one starts.
    assert run_worker_once(env, tmp_path).returncode == 0


def test_a_second_worker_on_another_host_is_refused_by_the_lease(tmp_path: Path) -> None:
    """Two hosts share the queue but not STATE_DIR (so not the lock file): the lease in the
    store still lets only one worker serve it."""
    env = base_env(tmp_path, POLL_INTERVAL_SECONDS="30")
    first = Service("worker.py", env, tmp_path, tmp_path / "first-worker.log")
    try:
        wait_until(lambda: any((tmp_path / "state").glob("worker-*.lock")))
        time.sleep(0.5)
        other_host = dict(env, STATE_DIR=str(tmp_path / "other-host-state"))
        second = run_worker_once(other_host, tmp_path)
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=10)

    assert second.returncode == 2
    assert f"the worker on {socket.gethostname()} ({tmp_path / 'state'})" in second.stderr
    # The first released its lease on the way out: the other host may now serve the queue.
    assert run_worker_once(other_host, tmp_path).returncode == 0

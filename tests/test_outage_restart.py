"""Issue 11 acceptance, with the real server.py and worker.py against the fake Notion served on
127.0.0.1: a server killed during a Notion outage comes back up while Notion is still down, takes
webhooks (202 from the journal), says "store unreachable" on /readyz, and makes every row once
Notion returns; a worker started during the outage waits instead of exiting."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx

from notion_queue.clock import SystemClock
from notion_queue.notion_setup import NotionSetup
from notion_queue.store.notion_gateway import NotionGateway, build_client
from notion_queue.testing.fake_notion import FakeNotion
from scripts.harness.processes import Service, free_port, run_script, wait_until
from tests.test_end_to_end import base_env

TOKEN = "secret_outage_notion_token"
SIGNUPS = 20
ROWS_PER_SIGNUP = 5
EARLY = ["early0@example.com", "early1@example.com"]  # taken before the kill


def test_a_server_restarted_during_a_notion_outage_loses_nothing(tmp_path: Path) -> None:
    fake = FakeNotion(token=TOKEN)
    gateway = NotionGateway(
        build_client(TOKEN, "https://api.notion.com", transport=fake.transport()), SystemClock()
    )
    setup = NotionSetup(gateway).run(fake.create_parent_page())
    ids, queue_ds = setup.database_ids, setup.data_source_ids["Email Queue"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"
    with fake.serve() as notion_url:
        env = base_env(
            tmp_path,
            PORT=str(port),
            QUEUE_BACKEND="notion",
            NOTION_TOKEN=TOKEN,
            NOTION_API_BASE_URL=notion_url,
            NOTION_EMAIL_QUEUE_DB_ID=ids["Email Queue"],
            NOTION_TEMPLATES_DB_ID=ids["Templates"],
            NOTION_CONTACTS_DB_ID=ids["Contacts"],
            NOTION_WORKERS_DB_ID=ids["Workers"],
            NOTION_REQUESTS_PER_SECOND="100",
        )
        server = Service("server.py", env, tmp_path, server_log)
        worker: Service | None = None
        try:
            wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200)
            fake.take_down()
            before = [
                httpx.post(f"{url}/webhook/christmas-signup", json={"email": email}).status_code
                for email in EARLY
            ]
            assert before == [202] * len(EARLY)
            server.send_signal(signal.SIGKILL)  # killed during the outage, events pending
            server.wait(timeout=10)

            server = Service("server.py", env, tmp_path, server_log)  # Notion is still down
            worker = Service("worker.py", env, tmp_path, worker_log)
            wait_until(lambda: httpx.get(f"{url}/healthz").status_code == 200)
            answers = [
                httpx.post(
                    f"{url}/webhook/christmas-signup",
                    json={"email": f"lead{i}@example.com", "first_name": "Lead"},
                )
                for i in range(SIGNUPS)
            ]
            assert [a.status_code for a in answers] == [202] * SIGNUPS
            status_file = tmp_path / "state" / "worker-status.json"
            wait_until(lambda: status_file.exists(), timeout=30)
            during = httpx.get(f"{url}/readyz")
            assert during.status_code == 503, during.text
            assert during.json()["reason"] == "store unreachable"
            assert during.json()["journal_backlog"] == SIGNUPS + len(EARLY)
            assert json.loads(status_file.read_text())["waiting_for_store"] is True
            assert worker.poll() is None  # waiting, not exited

            fake.bring_up()
            wait_until(lambda: httpx.get(f"{url}/readyz").json()["journal_backlog"] == 0, 90)
            assert httpx.get(f"{url}/readyz").status_code == 200
            wait_until(
                lambda: not json.loads(status_file.read_text()).get("waiting_for_store"),
                timeout=90,
            )
            assert worker.poll() is None
        finally:
            for process in (server, worker):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            codes = [p.wait(timeout=20) for p in (server, worker) if p is not None]

    emails = [
        page["properties"]["Email Address"]["email"]
        for page in fake.pages(queue_ds)
        if not page.get("in_trash")
    ]
    for email in [f"lead{i}@example.com" for i in range(SIGNUPS)] + EARLY:
        assert emails.count(email) == ROWS_PER_SIGNUP, email
    assert len(emails) == (SIGNUPS + len(EARLY)) * ROWS_PER_SIGNUP
    assert codes == [0, 0], server_log.read_text() + worker_log.read_text()
    assert "Traceback" not in server_log.read_text() + worker_log.read_text()


def test_a_server_on_a_corrupt_journal_stops_with_one_line(tmp_path: Path) -> None:
    journal = tmp_path / "state" / "intake.sqlite3"
    journal.parent.mkdir()
    journal.write_bytes(b"this is not a database, whatever it was" * 200)

    result = run_script("server.py", env=base_env(tmp_path, PORT=str(free_port())), cwd=tmp_path)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(journal) in lines[0] and "move it aside" in lines[0]


def test_a_worker_whose_token_notion_refuses_stops_with_one_line(tmp_path: Path) -> None:
    fake = FakeNotion(token=TOKEN)
    gateway = NotionGateway(
        build_client(TOKEN, "https://api.notion.com", transport=fake.transport()), SystemClock()
    )
    ids = NotionSetup(gateway).run(fake.create_parent_page()).database_ids
    with fake.serve() as notion_url:
        env = base_env(
            tmp_path,
            QUEUE_BACKEND="notion",
            NOTION_TOKEN="secret_wrong_token",
            NOTION_API_BASE_URL=notion_url,
            NOTION_EMAIL_QUEUE_DB_ID=ids["Email Queue"],
            NOTION_TEMPLATES_DB_ID=ids["Templates"],
            NOTION_CONTACTS_DB_ID=ids["Contacts"],
            NOTION_WORKERS_DB_ID=ids["Workers"],
        )
        result = run_script("worker.py", env=env, cwd=tmp_path)

    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("notion-queue: Notion refused the integration token")
    assert "Traceback" not in result.stderr and "secret_wrong_token" not in result.stderr

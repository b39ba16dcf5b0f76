"""The worker's status file, written by the worker and read by the server's /readyz."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from notion_queue.clock import FakeClock
from notion_queue.intake.journal import Journal
from notion_queue.settings import Settings
from notion_queue.web.app import create_app
from notion_queue.worker_status import StatusFile, status_path


def readyz(tmp_path: Path, clock: FakeClock) -> TestClient:
    app = create_app(
        Settings(state_dir=tmp_path / "state"),
        journal=Journal(tmp_path / "intake.sqlite3"),
        drainer=None,
        clock=clock,
    )
    return TestClient(app)


def test_what_the_worker_writes_in_state_dir_is_what_readyz_reads(
    tmp_path: Path, clock: FakeClock
) -> None:
    (tmp_path / "state").mkdir()
    status = StatusFile(status_path(tmp_path / "state"), clock)
    client = readyz(tmp_path, clock)

    status.waiting_for_store("Notion answered 503")
    waiting = client.get("/readyz")
    status.after_cycle({"sent": 2}, "Resend 429 daily_quota_exceeded: quota reached")
    paused = client.get("/readyz")
    status.after_cycle({"sent": 1}, None)
    working = client.get("/readyz")

    assert waiting.status_code == 503
    assert waiting.json()["reasons"] == ["worker waiting for the store"]
    assert waiting.json()["worker"]["reason"] == "Notion answered 503"
    assert paused.status_code == 503 and paused.json()["reasons"] == ["sending paused"]
    assert "daily_quota_exceeded" in paused.json()["worker"]["reason"]
    assert working.status_code == 200
    assert working.json()["worker"]["last_cycle"] == {"sent": 1}
    assert working.json()["worker"]["at"] == clock.now().isoformat()


@pytest.mark.parametrize("content", ["", '{"sending_paused": tr', "[1, 2]"])
def test_a_garbled_status_file_is_no_word_from_the_worker(
    content: str, tmp_path: Path, clock: FakeClock
) -> None:
    (tmp_path / "state").mkdir()
    status_path(tmp_path / "state").write_text(content)

    response = readyz(tmp_path, clock).get("/readyz")

    assert response.status_code == 200 and response.json()["worker"] is None


def test_without_a_path_the_status_file_writes_nothing(tmp_path: Path, clock: FakeClock) -> None:
    StatusFile(None, clock).after_cycle({"sent": 1}, None)
    assert list(tmp_path.iterdir()) == []

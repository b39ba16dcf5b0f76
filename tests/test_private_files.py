"""What the service keeps on disk (journal, queue file, outbox, locks, worker status, unsubscribe
key) is readable by its own user only: files 0600, folders 0700, with or without systemd's
UMask=0077, and files an older version left world-readable are tightened."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from notion_queue.clock import FakeClock
from notion_queue.intake.journal import Journal
from notion_queue.mail.base import OutgoingEmail
from notion_queue.mail.outbox import OutboxMailer
from notion_queue.store.sqlite import SqliteStore
from notion_queue.unsubscribe import load_secret
from notion_queue.worker import CycleSummary
from notion_queue.worker_lock import WorkerLock
from scripts.harness.processes import Service, free_port, wait_until
from tests.conftest import T0, WorkerFactory, new_row
from tests.test_end_to_end import drained

ROOT = Path(__file__).resolve().parent.parent


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes_under(folder: Path) -> dict[str, int]:
    found = {}
    for path in [folder, *folder.rglob("*")]:
        found[str(path.relative_to(folder.parent))] = mode(path)
    return found


def not_private(folder: Path) -> dict[str, str]:
    """Every path under folder whose mode lets another user in, as octal strings."""
    return {
        name: oct(bits)
        for name, bits in modes_under(folder).items()
        if bits & 0o077 or bits not in (0o600, 0o700)
    }


@pytest.fixture(autouse=True)
def _permissive_umask() -> Iterator[None]:
    """The classes must not count on the entry points' umask: run them under the usual 022."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_intake_journal_and_its_wal_files_are_private(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state" / "intake.sqlite3")
    journal.append("christmas-signup", "key-1", {"email": "sarah@example.com"}, T0)
    assert (tmp_path / "state" / "intake.sqlite3-wal").exists()
    assert not_private(tmp_path / "state") == {}
    journal.close()


def test_sqlite_queue_file_and_its_wal_files_are_private(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "var" / "queue.sqlite3")
    store.add_row(new_row())
    assert (tmp_path / "var" / "queue.sqlite3-wal").exists()
    assert not_private(tmp_path / "var") == {}
    store.close()


def test_outbox_folder_and_messages_are_private(tmp_path: Path, clock: FakeClock) -> None:
    mailer = OutboxMailer(tmp_path / "outbox", clock)
    mailer.send(
        OutgoingEmail(
            to="sarah@example.com",
            sender="BusinessX <hello@businessx.com>",
            subject="Hello",
            html="<p>Hello</p>",
            text="Hello",
            idempotency_key="row-1",
        )
    )
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    assert not_private(tmp_path / "outbox") == {}


def test_worker_lock_file_is_private(tmp_path: Path) -> None:
    with WorkerLock(tmp_path / "state", "SQLite queue q"):
        assert not_private(tmp_path / "state") == {}


def test_worker_status_file_is_private(
    tmp_path: Path, make_worker: WorkerFactory, clock: FakeClock
) -> None:
    worker = make_worker(SqliteStore(":memory:"), OutboxMailer(tmp_path / "outbox", clock))
    worker.status.path = tmp_path / "worker-status.json"
    worker.write_status(CycleSummary())
    assert mode(tmp_path / "worker-status.json") == 0o600


def test_generated_unsubscribe_key_is_private(tmp_path: Path) -> None:
    load_secret(None, tmp_path / "state")
    assert (tmp_path / "state" / "unsubscribe.key").exists()
    assert not_private(tmp_path / "state") == {}


def test_files_an_older_version_left_world_readable_are_tightened(
    tmp_path: Path, clock: FakeClock
) -> None:
    state = tmp_path / "state"
    Journal(state / "intake.sqlite3").close()
    SqliteStore(state / "queue.sqlite3").close()
    with WorkerLock(state, "SQLite queue q"):
        pass
    load_secret(None, state)
    OutboxMailer(tmp_path / "outbox", clock)
    for path in [*state.iterdir(), *(tmp_path / "outbox").rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    state.chmod(0o755)
    (tmp_path / "outbox").chmod(0o755)

    Journal(state / "intake.sqlite3").close()
    SqliteStore(state / "queue.sqlite3").close()
    with WorkerLock(state, "SQLite queue q"):
        pass
    load_secret(None, state)
    OutboxMailer(tmp_path / "outbox", clock)

    assert not_private(state) == {}
    assert not_private(tmp_path / "outbox") == {}


def test_a_queue_file_beside_other_files_leaves_their_folder_alone(tmp_path: Path) -> None:
    """SQLITE_PATH may sit in a folder of the user's own: only folders it creates are 0700."""
    tmp_path.chmod(0o755)
    SqliteStore(tmp_path / "queue.sqlite3").close()
    assert mode(tmp_path) == 0o755
    assert mode(tmp_path / "queue.sqlite3") == 0o600


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        umask=0o022,
        check=False,
    )


def test_server_cli_and_worker_create_only_private_files_under_a_permissive_umask(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "PORT": str(port),
        "STATE_DIR": str(tmp_path / "var" / "state"),
        "SQLITE_PATH": str(tmp_path / "var" / "queue.sqlite3"),
        "OUTBOX_DIR": str(tmp_path / "var" / "outbox"),
    }
    url = f"http://127.0.0.1:{port}"
    server = Service("server.py", env, ROOT, tmp_path / "server.log", umask=0o022)
    try:
        wait_until(lambda: httpx.get(f"{url}/healthz").status_code == 200)
        signup = {"email": "sarah@example.com", "first_name": "Sarah"}
        assert httpx.post(f"{url}/webhook/christmas-signup", json=signup).status_code == 202
        wait_until(lambda: drained(url))
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0, server.log_text()
    cli = ["-m", "notion_queue.cli", "enqueue", "onboarding", "--email", "tom@example.com"]
    enqueued = run([*cli, "--var", "first_name=Tom"], env)
    assert enqueued.returncode == 0, enqueued.stderr
    sent = run(["worker.py", "--once"], env)
    assert sent.returncode == 0, sent.stderr

    assert list((tmp_path / "var" / "outbox").glob("*.eml"))
    assert (tmp_path / "var" / "state" / "intake.sqlite3").exists()
    assert (tmp_path / "var" / "state" / "unsubscribe.key").exists()
    assert not_private(tmp_path / "var") == {}

"""The server's drainer runs in a process of its own (issue 15: at 300 webhooks/s, a drainer
thread sharing the server's GIL pushed the 202 p99 past 80 ms and fell behind). What a user
relies on: no drainer outlives its server, a drainer that dies is started again, one drainer
at a time applies a journal, and /readyz still says what the drainer knows."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from notion_queue.clock import SystemClock
from notion_queue.intake.drainer import STORE_UNREACHABLE
from notion_queue.intake.drainer_child import LOCK_FILE
from notion_queue.intake.drainer_process import DRAINER_NOT_RUNNING, DrainerProcess
from notion_queue.intake.drainer_status import drainer_status_path
from notion_queue.intake.journal import Journal
from notion_queue.pacing import Backoff
from scripts.harness.processes import Service, free_port, wait_until
from tests.test_end_to_end import base_env

SIGNUP = "/webhook/christmas-signup"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is no drainer either.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.split(") ", 1)[1][0] != "Z"


def rows_in(queue_file: Path) -> int:
    if not queue_file.exists():
        return 0
    with sqlite3.connect(queue_file) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM email_queue").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0


def drainer_pid(state_dir: Path) -> int:
    path = drainer_status_path(state_dir)
    wait_until(path.exists, 30, "the drainer's status file")
    return int(json.loads(path.read_text())["pid"])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Service, str]]:
    port = free_port()
    service = Service(
        "server.py", base_env(tmp_path, PORT=str(port)), tmp_path, tmp_path / "server.log"
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, 30, "the server")
        yield service, url
    finally:
        service.stop()


def test_the_drainer_is_a_process_of_its_own_that_applies_the_events(
    server: tuple[Service, str], tmp_path: Path
) -> None:
    service, url = server
    pid = drainer_pid(tmp_path / "state")
    assert pid != service.pid and alive(pid)

    answer = httpx.post(url + SIGNUP, json={"email": "lead@example.com", "first_name": "Lea"})

    assert answer.status_code == 202
    wait_until(lambda: rows_in(tmp_path / "queue.sqlite3") == 5, 10, "the signup's five rows")


def test_a_server_killed_takes_its_drainer_with_it_and_the_next_one_applies_what_was_left(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = base_env(tmp_path, PORT=str(port))
    url = f"http://127.0.0.1:{port}"
    server = Service("server.py", env, tmp_path, tmp_path / "server.log")
    try:
        wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, 30, "the server")
        pid = drainer_pid(tmp_path / "state")
        server.send_signal(signal.SIGKILL)
        server.wait(10)

        wait_until(lambda: not alive(pid), 10, "the orphaned drainer to exit")

        journal = Journal(tmp_path / "state" / "intake.sqlite3")  # left pending by the kill
        journal.append(
            "christmas-signup", "left-over", {"email": "left@example.com"}, SystemClock().now()
        )
        journal.close()
        server = Service("server.py", env, tmp_path, tmp_path / "server.log")
        wait_until(lambda: rows_in(tmp_path / "queue.sqlite3") == 5, 30, "the left-over rows")
    finally:
        server.stop()


def test_a_drainer_that_dies_is_started_again_and_readyz_says_so_meanwhile(
    server: tuple[Service, str], tmp_path: Path
) -> None:
    service, url = server
    first = drainer_pid(tmp_path / "state")

    os.kill(first, signal.SIGKILL)

    wait_until(
        lambda: httpx.get(f"{url}/readyz").json()["reason"] == DRAINER_NOT_RUNNING,
        10,
        "/readyz to say the drainer is not running",
    )
    wait_until(lambda: drainer_pid(tmp_path / "state") != first, 30, "a new drainer")
    answer = httpx.post(url + SIGNUP, json={"email": "after@example.com"})
    assert answer.status_code == 202
    wait_until(lambda: rows_in(tmp_path / "queue.sqlite3") == 5, 10, "the rows, by the new one")
    wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, 10, "ready again")
    assert '"drainer_exited"' in service.log_text()


def test_the_drainer_leaves_sigint_and_sigterm_to_its_server(
    server: tuple[Service, str], tmp_path: Path
) -> None:
    """Ctrl-C in a terminal and systemd's stop signal the whole group; the server stops
    gracefully and closes the pipe, and only then does the drainer end."""
    service, url = server
    pid = drainer_pid(tmp_path / "state")

    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    answer = httpx.post(url + SIGNUP, json={"email": "after@example.com"})

    assert answer.status_code == 202  # applied by the same drainer, after both signals
    wait_until(lambda: rows_in(tmp_path / "queue.sqlite3") == 5, 10, "the rows")
    assert drainer_pid(tmp_path / "state") == pid and alive(pid)

    assert service.stop() == 0
    wait_until(lambda: not alive(pid), 10, "the drainer to end with its server")


def test_one_drainer_at_a_time_applies_a_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A restarted server's new drainer waits for the old one (still finishing the event in
    hand) to let go of STATE_DIR/drainer.lock; here the test holds the lock."""
    for name, value in base_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    clock = SystemClock()
    state_dir = tmp_path / "state"
    journal = Journal(state_dir / "intake.sqlite3")
    journal.append("christmas-signup", "one", {"email": "one@example.com"}, clock.now())
    drainer = DrainerProcess(state_dir, clock)
    with (state_dir / LOCK_FILE).open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        drainer.start()
        try:
            logged = ""

            def waiting() -> bool:
                nonlocal logged
                logged += capfd.readouterr().err
                return "drainer_waiting" in logged

            wait_until(waiting, 30, "the drainer to wait for the lock")
            drainer.notify()
            assert drainer.state().store_problem == STORE_UNREACHABLE  # not draining
            assert rows_in(tmp_path / "queue.sqlite3") == 0
            fcntl.flock(held, fcntl.LOCK_UN)

            wait_until(lambda: rows_in(tmp_path / "queue.sqlite3") == 5, 30, "the rows")
            wait_until(lambda: drainer.state().store_ok, 10, "the drainer's status")
        finally:
            drainer.stop()
            journal.close()


def test_a_child_that_never_reports_is_not_ready_and_one_that_exits_is_started_again(
    tmp_path: Path,
) -> None:
    silent = DrainerProcess(
        tmp_path, SystemClock(), command=[sys.executable, "-c", "import time; time.sleep(60)"]
    )
    silent.start()
    try:
        state = silent.state()
        assert (state.store_problem, state.last_error) == (STORE_UNREACHABLE, "not reached yet")
    finally:
        silent.stop(timeout=1)  # it never reads its pipe: killed after the timeout
    assert silent._process is not None and silent._process.returncode == -signal.SIGKILL

    crashing = DrainerProcess(
        tmp_path,
        SystemClock(),
        command=[sys.executable, "-c", "raise SystemExit(3)"],
        backoff=Backoff(base=0.01, cap=0.05),
    )
    crashing.start()
    pids: set[int | None] = set()
    said: list[str] = []

    def note_state() -> bool:
        pids.add(crashing.pid)
        state = crashing.state()
        if state.store_problem == DRAINER_NOT_RUNNING:
            said.append(state.last_error)
        return len(pids) >= 3 and bool(said)

    try:
        wait_until(note_state, 10, "three starts, and a state between two")
        assert "exited with code 3" in said[0]
    finally:
        crashing.stop()


def test_a_status_file_left_by_another_drainer_is_not_this_ones_word(tmp_path: Path) -> None:
    drainer_status_path(tmp_path).write_text(
        json.dumps(
            {
                "pid": 1,
                "store_problem": "",
                "last_error": "",
                "journal_error": "",
                "idle_seconds": 0.0,
                "at": "2026-12-02T00:00:00+00:00",
            }
        )
    )
    silent = DrainerProcess(
        tmp_path, SystemClock(), command=[sys.executable, "-c", "import sys; sys.stdin.read()"]
    )
    silent.start()
    try:
        assert silent.state().store_problem == STORE_UNREACHABLE
    finally:
        silent.stop()


def test_a_drainer_that_may_not_lower_its_priority_drains_all_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy/'s unit filters the @resources system calls (setpriority among them): os.nice
    fails there with EPERM, and the drainer must run on at its usual priority."""
    for name, value in base_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    refused = (
        "import errno, os\n"
        "def nice(increment):\n"
        "    raise PermissionError(errno.EPERM, 'Operation not permitted')\n"
        "os.nice = nice\n"
        "from notion_queue.intake.drainer_child import main\n"
        "raise SystemExit(main())\n"
    )
    clock = SystemClock()
    journal = Journal(tmp_path / "state" / "intake.sqlite3")
    journal.append("christmas-signup", "one", {"email": "one@example.com"}, clock.now())
    journal.close()
    drainer = DrainerProcess(tmp_path / "state", clock, command=[sys.executable, "-c", refused])
    drainer.start()
    try:
        wait_until(lambda: rows_in(tmp_path / "queue.sqlite3") == 5, 30, "the rows")
        assert drainer._process is not None and drainer._process.poll() is None
    finally:
        drainer.stop()

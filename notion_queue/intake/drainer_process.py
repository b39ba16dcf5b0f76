"""The server's drainer, in a process of its own.

Applying events is CPU work (validation, planning, SQLite); in the server's process it shares
the GIL with the event loop that answers webhooks, and each slows the other down (at 300
events/s the 202 p99 rose past 80 ms and the backlog grew without end). So the server starts
`drainer_child.py` as a child process and keeps one pipe to it:

- a byte down the pipe is notify(): a new event was journaled, drain now;
- the pipe's end of file is the server gone (stopped, or killed even by SIGKILL): the child
  finishes the event in hand and exits, so no drainer outlives its server;
- the child's status file (`drainer_status.py`) is what /readyz reads;
- a child that dies is started again, after a back-off, and says so in the log.

The journal is the only thing the two share: the server appends, the child applies and marks.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from notion_queue.clock import Clock
from notion_queue.intake.drainer import STORE_UNREACHABLE, DrainerState
from notion_queue.intake.drainer_status import read_drainer_status
from notion_queue.logs import get_logger
from notion_queue.pacing import Backoff

log = get_logger("notion_queue.server")

DRAINER_NOT_RUNNING = "intake drainer not running"
CHILD_COMMAND = (sys.executable, "-m", "notion_queue.intake.drainer_child")
# The child imports this very package, wherever it lies (a checkout run as `python server.py`
# from another folder is not on the child's path by itself).
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def child_environment() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (PACKAGE_ROOT, path) if p)}


class DrainerProcess:
    """An IntakeDrainer whose work happens in a child process (see the module's docstring).
    The child reads its settings from the same environment and .env as the server."""

    def __init__(
        self,
        state_dir: Path,
        clock: Clock,
        *,
        command: Sequence[str] = CHILD_COMMAND,
        backoff: Backoff | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.clock = clock
        self.command = list(command)
        self.backoff = backoff or Backoff(base=1, cap=30)
        self._lock = threading.Lock()  # the pipe: never written once closed, nor swapped under
        self._process: subprocess.Popen[bytes] | None = None
        self._pipe: int | None = None
        self._started_at = clock.monotonic()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="drainer-watch", daemon=True)
        self._watcher.start()

    def notify(self) -> None:
        with self._lock:
            if self._pipe is None:
                return
            # A full pipe holds wake-ups enough; a dead child is started again.
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(self._pipe, b"\n")

    def stop(self, timeout: float = 10) -> None:
        """Close the pipe (the child finishes the event in hand and exits); SIGKILL a child
        still running after `timeout` seconds."""
        deadline = self.clock.monotonic() + timeout
        self._stopping.set()
        self._close_pipe()
        if self._watcher is not None:
            self._watcher.join(timeout)  # a start under way ends first: _process is the last
        process = self._process
        if process is None:
            return
        try:
            process.wait(max(0.0, deadline - self.clock.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("drainer_killed", pid=process.pid, after_seconds=timeout)
            process.kill()
            process.wait()

    def state(self) -> DrainerState:
        now, monotonic = self.clock.now(), self.clock.monotonic()
        process = self._process
        if process is not None and process.poll() is not None:
            return DrainerState(
                store_problem=DRAINER_NOT_RUNNING,
                last_error=f"the drainer process exited with code {process.returncode}",
                journal_error="",
                idle_seconds=monotonic - self._started_at,
                at=now,
            )
        state = read_drainer_status(self.state_dir, process.pid) if process else None
        if state is None:  # starting: it has not reached the store yet
            return DrainerState(
                store_problem=STORE_UNREACHABLE,
                last_error="not reached yet",
                journal_error="",
                idle_seconds=monotonic - self._started_at,
                at=now,
            )
        since = max(0.0, (now - state.at).total_seconds())
        return DrainerState(
            store_problem=state.store_problem,
            last_error=state.last_error,
            journal_error=state.journal_error,
            idle_seconds=state.idle_seconds + since,
            at=now,
        )

    def _spawn(self) -> None:
        read_end, write_end = os.pipe()
        try:
            process = subprocess.Popen(  # noqa: S603 (our own command line)
                self.command, stdin=read_end, close_fds=True, env=child_environment()
            )
        except OSError:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        os.set_blocking(write_end, False)
        with self._lock:
            self._process, self._pipe = process, write_end
            self._started_at = self.clock.monotonic()
            if self._stopping.is_set():  # stop() came while it started: it ends at once
                os.close(write_end)
                self._pipe = None
        log.info("drainer_started", pid=process.pid)

    def _close_pipe(self) -> None:
        with self._lock:
            if self._pipe is not None:
                os.close(self._pipe)
                self._pipe = None

    def _watch(self) -> None:
        """Start the child again whenever it dies, until stop()."""
        failures = 0
        while not self._stopping.is_set():
            process, started = self._process, self._started_at
            assert process is not None
            code = process.wait()
            if self._stopping.is_set():
                return
            if self.clock.monotonic() - started > 60:
                failures = 0  # it lived a good while: no crash loop, so no long back-off
            failures += 1
            delay = self.backoff.delay(failures)
            log.error("drainer_exited", pid=process.pid, code=code, restart_in=round(delay, 1))
            self._close_pipe()
            if self._stopping.wait(delay):
                return
            try:
                self._spawn()
            except OSError as exc:
                log.error("drainer_not_started", reason=str(exc))

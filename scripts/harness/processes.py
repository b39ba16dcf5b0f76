"""The one process helper of the benchmark, the soaks and the tests: a free loopback port, waiting
for a condition, and server.py / worker.py run as real subprocesses with a given environment,
their output in a log file that can be read back.

server.py and worker.py are found in the repository checkout these scripts live in (the product
package does not ship them, nor this harness).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = [
    "REPO_ROOT",
    "ProcessGroup",
    "Service",
    "free_port",
    "process_group",
    "run_script",
    "running",
    "script_command",
    "wait_until",
]

REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout: server.py, worker.py, scripts/


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], object],
    timeout: float = 15.0,
    what: str = "the condition",
    step: float = 0.05,
) -> None:
    """Poll `check` until it is true; an HTTP error (a server still starting) counts as not yet.
    Raises TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def script_command(script: str, *args: str) -> list[str]:
    """The command line that runs one of the checkout's scripts (server.py, worker.py, ...)."""
    return [sys.executable, str(REPO_ROOT / script), *args]


def run_script(
    script: str, *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a script to its end (`worker.py --once`, a server that must refuse to start) and
    capture its output as text."""
    return subprocess.run(
        script_command(script, *args),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Service:
    """server.py or worker.py started as a subprocess, stdout and stderr appended to `log`.
    Stopped by its own id only."""

    def __init__(
        self,
        script: str,
        env: dict[str, str],
        cwd: Path,
        log: Path,
        *args: str,
        umask: int = -1,
    ) -> None:
        self.name = script.removesuffix(".py")
        self.log = log
        with log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                script_command(script, *args),
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=out,
                umask=umask,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def alive(self) -> bool:
        return self.process.poll() is None

    def poll(self) -> int | None:
        return self.process.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout=timeout)

    def send_signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (a graceful stop) if still running; SIGKILL if it is not gone within
        `timeout` seconds. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return int(self.process.returncode)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


@contextlib.contextmanager
def running(
    script: str, env: dict[str, str], cwd: Path, log: Path, *args: str
) -> Iterator[Service]:
    """A Service for the length of a with block, stopped (SIGTERM) on the way out."""
    service = Service(script, env, cwd, log, *args)
    try:
        yield service
    finally:
        service.stop()


@dataclass
class ProcessGroup:
    """The services a scenario started in `workdir` with one environment, so that every one of
    them is stopped at the end, by its own id."""

    workdir: Path
    env: dict[str, str]
    started: list[Service] = field(default_factory=list)

    def start(self, script: str, *args: str, log_name: str) -> Service:
        service = Service(script, self.env, self.workdir, self.workdir / log_name, *args)
        self.started.append(service)
        return service

    def stop_all(self) -> None:
        for service in self.started:
            service.stop()


@contextlib.contextmanager
def process_group(workdir: Path, env: dict[str, str]) -> Iterator[ProcessGroup]:
    group = ProcessGroup(workdir, env)
    try:
        yield group
    finally:
        group.stop_all()

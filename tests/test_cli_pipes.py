"""`notion-queue ... | head -1`: a reader that goes away early ends the command quietly, as it
ends any Unix tool, instead of with a BrokenPipeError traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIGPIPE_STATUS = 141  # 128 + SIGPIPE: what a shell reports for a tool its reader left


def _env(tmp_path: Path) -> dict[str, str]:
    drop = ("NOTION_", "RESEND_", "QUEUE_", "SQLITE_", "MAIL_", "STATE_", "OUTBOX_")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
    env["PYTHONPATH"] = str(ROOT)
    env["SQLITE_PATH"] = str(tmp_path / "queue.sqlite3")
    env["STATE_DIR"] = str(tmp_path / "state")
    return env


def _run_into_closed_pipe(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The command with its stdout on a pipe whose reader has already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "notion_queue.cli", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=_env(tmp_path),
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [("status",), ("templates", "check")],
    ids=["status", "templates-check"],
)
def test_command_whose_reader_left_exits_quietly_like_a_unix_tool(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = _run_into_closed_pipe(tmp_path, *args)

    assert result.stderr.decode() == ""
    assert result.returncode == SIGPIPE_STATUS


def test_help_whose_reader_left_says_nothing_on_stderr(tmp_path: Path) -> None:
    result = _run_into_closed_pipe(tmp_path, "--help")

    assert result.stderr.decode() == ""
    assert result.returncode in (0, SIGPIPE_STATUS)  # argparse itself ignores a failed write


def test_status_piped_to_head_prints_its_first_line_and_no_traceback(tmp_path: Path) -> None:
    command = subprocess.Popen(
        [sys.executable, "-m", "notion_queue.cli", "status"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    assert command.stdout is not None and command.stderr is not None
    head = subprocess.run(
        ["head", "-1"], stdin=command.stdout, capture_output=True, timeout=60, check=True
    )
    command.stdout.close()  # only head reads it, as in a shell pipeline
    errors = command.stderr.read().decode()
    command.wait(timeout=60)
    command.stderr.close()

    assert head.stdout.decode().startswith("Store: ")
    assert len(head.stdout.decode().splitlines()) == 1
    assert "Traceback" not in errors
    assert "BrokenPipeError" not in errors

"""`notion-queue status | head -1`: when the reader of stdout goes away, the command ends quietly
with 141 (128 + SIGPIPE), as a Unix tool killed by SIGPIPE does, instead of a BrokenPipeError
traceback.

Python ignores SIGPIPE, so a write to a pipe nobody reads raises BrokenPipeError. Restoring the
default SIGPIPE action is no cure here: it would kill the command silently when a socket to
Notion breaks too. So the error is caught, and only when stdout is the pipe that broke.
"""

from __future__ import annotations

import functools
import os
import select
import sys
from collections.abc import Callable
from typing import ParamSpec

P = ParamSpec("P")
READER_GONE_STATUS = 128 + 13  # 128 + SIGPIPE


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reading end is closed (poll reports an error on it)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, 0)  # POLLERR is always reported
    return any(events & select.POLLERR for _, events in poller.poll(0))


def quiet_when_reader_leaves(command: Callable[P, int]) -> Callable[P, int]:
    """`command`, ending with READER_GONE_STATUS and nothing on stderr when stdout's reader has
    gone; stdout is flushed before it ends, so a buffered pipe fails here, not at exit."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            try:
                return command(*args, **kwargs)
            finally:  # argparse's --help ends in SystemExit with its text still buffered
                sys.stdout.flush()
        except BrokenPipeError:
            if not _stdout_reader_gone():
                raise
            # What is still buffered would fail again at exit: send it nowhere.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            return READER_GONE_STATUS

    return run

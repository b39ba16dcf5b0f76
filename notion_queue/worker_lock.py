"""One worker per queue on a host: an exclusive lock file in STATE_DIR, which the kernel
releases when the process dies (even by SIGKILL), so a stale lock never blocks a restart."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
from pathlib import Path
from typing import IO

from notion_queue.errors import ConfigError
from notion_queue.private_files import private_dir, private_file


class WorkerLock:
    def __init__(self, state_dir: Path, queue_name: str) -> None:
        digest = hashlib.sha256(queue_name.encode()).hexdigest()[:12]
        self.path = Path(state_dir) / f"worker-{digest}.lock"
        self.queue_name = queue_name
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        private_dir(self.path.parent)
        handle = private_file(self.path).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "an unknown process"
            handle.close()
            raise ConfigError(
                f"another worker already serves {self.queue_name} ({holder}); "
                f"stop it first (lock: {self.path})"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> WorkerLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

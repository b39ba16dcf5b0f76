"""What the service keeps on disk holds addresses, events and secrets: readable by its own user
only (folders 0700, files 0600), whatever the umask and with or without systemd.

The entry points call `private_umask()` first thing; the classes that create files call
`private_dir` / `private_file` too, so the modes hold when they are used as a library, and
files an older version left world-readable are tightened on the next start.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_umask() -> None:
    """Every file and folder this process creates from now on is its user's only."""
    os.umask(0o077)


def private_dir(path: Path | str) -> Path:
    """A folder of the service's own (STATE_DIR, OUTBOX_DIR): made and kept 0700."""
    folder = Path(path)
    _make_missing_dirs(folder)
    folder.chmod(DIR_MODE)
    return folder


def private_file(path: Path | str) -> Path:
    """The file, created empty when missing, 0600 either way. Folders on the way are made 0700
    when missing; a folder that exists is left as it is (it may be the user's own)."""
    file = Path(path)
    _make_missing_dirs(file.parent)
    os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE))
    file.chmod(FILE_MODE)
    return file


def private_sqlite_file(path: Path | str) -> Path:
    """A SQLite database file made 0600 before sqlite opens it: SQLite gives its -wal, -shm and
    -journal files the database file's mode. Companions left by an older version are tightened."""
    file = private_file(path)
    for suffix in SQLITE_COMPANIONS:
        companion = file.with_name(file.name + suffix)
        if companion.exists():
            companion.chmod(FILE_MODE)
    return file


def tighten(path: Path | str) -> None:
    """Make an existing file 0600 (a file an older version wrote world-readable)."""
    file = Path(path)
    if file.exists():
        file.chmod(FILE_MODE)


def _make_missing_dirs(folder: Path) -> None:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for level in reversed(missing):
        try:
            level.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process made it first
            continue
        level.chmod(DIR_MODE)  # mkdir's mode is masked by the umask

"""What an sqlite3 error means for an operator: a damaged file, or one that cannot be written.

SQLite reports a damaged file as SQLITE_CORRUPT ("database disk image is malformed") or
SQLITE_NOTADB ("file is not a database"), both as sqlite3.DatabaseError. A full disk, an I/O error
or a lock held too long are sqlite3.OperationalError: the file is sound, the write did not happen.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from notion_queue.errors import ConfigError, CorruptFile
from notion_queue.private_files import private_sqlite_file

_CORRUPT_NAMES = ("SQLITE_CORRUPT", "SQLITE_NOTADB")  # and extended codes: SQLITE_CORRUPT_INDEX
_CORRUPT_TEXTS = ("database disk image is malformed", "file is not a database")


def is_corrupt(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    return name.startswith(_CORRUPT_NAMES) or any(text in str(exc) for text in _CORRUPT_TEXTS)


def corrupt_file(path: Path | str, reason: object, what: str) -> CorruptFile:
    """The one line that stops start-up: which file, what is wrong, what to do."""
    return CorruptFile(
        f"{path} is corrupt ({reason}): stop the processes, move it aside and restart; {what} "
        f"in it can be recovered with `sqlite3 {path} .recover`"
    )


def cannot_open(path: Path | str, exc: BaseException, setting: str) -> ConfigError:
    return ConfigError(
        f"{path} cannot be opened ({exc}): check that {setting} names a place this user can "
        "write to, with free space"
    )


def connect(path: Path | str, setting: str) -> sqlite3.Connection:
    """Open an SQLite file shared by threads, readable by this user only (made 0600 before
    SQLite opens it); a place it cannot be opened is one clear line."""
    try:
        if str(path) != ":memory:":
            private_sqlite_file(path)
        return sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    except (OSError, sqlite3.Error) as exc:
        raise cannot_open(path, exc, setting) from None


def check_file(db: sqlite3.Connection, path: Path | str, what: str) -> None:
    """Raise CorruptFile when SQLite finds the open file damaged (`PRAGMA quick_check`)."""
    try:
        result = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        if is_corrupt(exc):
            raise corrupt_file(path, exc, what) from None
        raise
    if result != ["ok"]:
        raise corrupt_file(path, "; ".join(str(r) for r in result[:3]), what)


def describe(exc: BaseException) -> str:
    """A short reason for /readyz and the logs (no paths from the request, no secrets)."""
    return f"{type(exc).__name__}: {exc}"

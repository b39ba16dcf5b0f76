"""The embedded default Mailer: each message becomes a real .eml file in OUTBOX_DIR.

Open one with any mail client to see what a recipient would. Idempotency works as Resend's, and
survives a kill at any moment: a message is named by its idempotency key (`<sha256>.eml`) and
appears under that name in one step (written to a temp file, fsynced, then hard-linked, which
fails if the name exists), so a key whose file exists is a message sent, and the same key again
answers that message's id instead of writing another. Two threads sending one key at once make
one file and both answer its id.

Outboxes written before this scheme kept each key in `.idempotency/<sha256 of key>` beside
timestamp-named files; such a key still counts as sent (answered from its key file), and those
files stay where they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from pathlib import Path

from notion_queue.clock import Clock
from notion_queue.errors import PermanentError
from notion_queue.mail.base import OutgoingEmail, SendResult
from notion_queue.private_files import private_dir
from notion_queue.render import one_line

LEGACY_KEYS = ".idempotency"  # where earlier versions recorded the keys they had sent
BATCH_KEYS = ".batches"  # each batch key, with the email keys of the set it names


class OutboxMailer:
    def __init__(self, folder: Path, clock: Clock) -> None:
        self.folder = Path(folder)
        private_dir(self.folder)
        self.clock = clock

    def send(self, email: OutgoingEmail) -> SendResult:
        digest = hashlib.sha256(email.idempotency_key.encode()).hexdigest()
        path = self.folder / f"{digest}.eml"
        sent = _sent_id(path) or self._legacy_sent_id(digest)
        if sent is not None:
            return SendResult(sent, replayed=True)
        now = self.clock.now()
        outbox_id = f"{digest[:32]}@{_domain(email.sender)}"  # the same for the same key
        msg = build_message(email, message_id=f"<{outbox_id}>", date=format_datetime(now))
        if not _create_once(path, bytes(msg), now):
            # Another thread got there first; its message is complete once it has the name.
            return SendResult(_sent_id(path) or outbox_id, replayed=True)
        return SendResult(outbox_id)

    def send_batch(self, emails: Sequence[OutgoingEmail], idempotency_key: str) -> list[SendResult]:
        """One file per email, each exactly once by its own key as `send`; the batch key is
        recorded with the set it names, and refused with another set, as Resend does (409
        invalid_idempotent_request), so a caller that regroups a batch finds out here too."""
        keys = "\n".join(email.idempotency_key for email in emails).encode()
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
        record = private_dir(self.folder / BATCH_KEYS) / digest
        if not _create_once(record, keys, self.clock.now()) and record.read_bytes() != keys:
            raise PermanentError(
                "Same idempotency key used with a different request payload (another batch)"
            )
        return [self.send(email) for email in emails]

    def _legacy_sent_id(self, digest: str) -> str | None:
        key_file = self.folder / LEGACY_KEYS / digest
        try:
            return str(json.loads(key_file.read_text())["id"])
        except FileNotFoundError:
            return None

    def close(self) -> None:
        pass


def sent_messages(folder: Path) -> list[Path]:
    """The outbox's messages, oldest first (a message's mtime is the time it was sent)."""
    paths = Path(folder).glob("*.eml") if Path(folder).exists() else iter(())
    dated = []
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            dated.append((path.stat().st_mtime_ns, path.name, path))
    return [path for _, _, path in sorted(dated)]


def _sent_id(path: Path) -> str | None:
    """The Message-ID (without <>) of the message at `path`, or None if there is none."""
    try:
        headers = BytesHeaderParser().parsebytes(path.read_bytes())
    except FileNotFoundError:
        return None
    value = headers["Message-ID"]
    message_id = str(value).strip().strip("<>") if value is not None else ""
    return message_id or None


def _create_once(path: Path, data: bytes, sent_at: datetime) -> bool:
    """Make `path` hold `data` in one step, unless it exists: True if this call made it.

    The data is complete and on disk before the name appears, so a kill leaves either no
    message or a whole one (and at worst a stray `.tmp-*` file, which nothing reads)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            stamp = sent_at.timestamp()
            os.utime(handle.fileno(), (stamp, stamp))
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        _fsync_dir(path.parent)
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Long headers (List-Unsubscribe) stay plain ASCII instead of RFC 2047 encoded-words, which
# mail clients would not read as a URL.
_POLICY = policy.SMTP.clone(max_line_length=998)


def build_message(email: OutgoingEmail, *, message_id: str, date: str) -> EmailMessage:
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = one_line(email.sender)
    msg["To"] = one_line(email.to)
    msg["Subject"] = one_line(email.subject)
    msg["Date"] = date
    msg["Message-ID"] = message_id
    if email.reply_to:
        msg["Reply-To"] = one_line(email.reply_to)
    for name, value in email.headers.items():
        msg[one_line(name)] = one_line(value)
    msg.set_content(email.text)
    msg.add_alternative(email.html, subtype="html")
    return msg


def _domain(sender: str) -> str:
    address = sender.rsplit("<", 1)[-1].rstrip(">")
    return address.rsplit("@", 1)[-1] or "localhost"

"""The embedded default Mailer: each message becomes a real .eml file in OUTBOX_DIR.

Open one with any mail client to see what a recipient would. Idempotency works as Resend's, and
survives a kill at any moment: a message is named by its idempotency key (`<sha256>.eml`) and
appears under that name in one step (written to a temp file, fsynced, then hard-linked, which
fails if the name exists), so a key whose file exists is a message sent, and the same key again
answers that message's id instead of writing another. Two threads sending one key at once make
one file and both answer its id.

Outboxes written before this scheme kept each key in `.idempotency/<sha256 of key>` beside
timestamp-named files; such a key still counts as sent (answered from its key file) for 48 hours
(retention.KEEP_HISTORY), after which the key file is pruned; the messages stay where they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import sys
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
from notion_queue.mail.group_sync import GroupSync
from notion_queue.private_files import private_dir
from notion_queue.render import one_line
from notion_queue.retention import KEEP_HISTORY, PRUNE_EVERY_SECONDS, Every

LEGACY_KEYS = ".idempotency"  # where earlier versions recorded the keys they had sent
BATCH_KEYS = ".batches"  # each batch key, with the email keys of the set it names


class OutboxMailer:
    def __init__(self, folder: Path, clock: Clock) -> None:
        self.folder = Path(folder)
        private_dir(self.folder)
        self.clock = clock
        self._prune = Every(clock, PRUNE_EVERY_SECONDS)
        self._folder_sync = GroupSync(lambda: _fsync_dir(self.folder))

    def send(self, email: OutgoingEmail) -> SendResult:
        result = self.send_unsynced(email)
        # The name is durable only once the folder is fsynced: an fsync shared with the sends
        # under way at the same time (GroupSync), never skipped. A message found already sent
        # is synced too: its sender may have been killed before its folder fsync.
        self.sync()
        return result

    def sync(self) -> None:
        """Every message sent so far is on disk under its name (one folder fsync, shared)."""
        self._folder_sync.sync()

    def send_unsynced(self, email: OutgoingEmail) -> SendResult:
        """As `send`, but the message's name is durable only after the next `sync()`."""
        if self._prune.due():
            self.prune_legacy_keys()
        digest = hashlib.sha256(email.idempotency_key.encode()).hexdigest()
        path = self.folder / f"{digest}.eml"
        sent = _sent_id(path)
        if sent is not None:
            return SendResult(sent, replayed=True)
        sent = self._legacy_sent_id(digest)
        if sent is not None:
            return SendResult(sent, replayed=True)
        now = self.clock.now()
        outbox_id = f"{digest[:32]}@{_domain(email.sender)}"  # the same for the same key
        data = message_bytes(email, message_id=f"<{outbox_id}>", date=format_datetime(now))
        if not _create_once(path, data, now):
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
        created = _create_once(record, keys, self.clock.now())
        if created:
            _fsync_dir(record.parent)
        elif record.read_bytes() != keys:
            raise PermanentError(
                "Same idempotency key used with a different request payload (another batch)"
            )
        return [self.send(email) for email in emails]

    def prune_legacy_keys(self) -> int:
        """Forget legacy key records older than KEEP_HISTORY (48 h, past Resend's 24 h key
        window); answers how many went."""
        before = (self.clock.now() - KEEP_HISTORY).timestamp()
        folder = self.folder / LEGACY_KEYS
        pruned = 0
        for path in folder.iterdir() if folder.is_dir() else ():
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() and path.stat().st_mtime < before:
                    path.unlink()
                    pruned += 1
        return pruned

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
    message or a whole one (and at worst a stray `.tmp-*` file, which nothing reads). The name
    itself is durable once the caller has fsynced the folder."""
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


# What a header value may hold for message_bytes to write it as it is: printable ASCII, no
# encoded-word marker, and in an address none of the characters that make it a structured one.
_PLAIN_VALUE = re.compile(r"[\x20-\x7e]+")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_ADDR_SPEC = rf"{_ATEXT}+(?:\.{_ATEXT}+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_PLAIN_ADDRESS = re.compile(rf"(?:{_ATEXT}+(?: {_ATEXT}+)* )?<{_ADDR_SPEC}>|{_ADDR_SPEC}")
_ADDRESS_HEADERS = frozenset({"from", "to", "reply-to", "cc", "bcc", "sender"})
_MAX_LINE = 998


def message_bytes(email: OutgoingEmail, *, message_id: str, date: str) -> bytes:
    """The bytes build_message gives (boundary aside), written directly when every header and
    body is plain ASCII with short lines (the common case, ~20x cheaper than the email
    package's header parsing and folding); anything else goes through build_message."""
    headers = [
        ("From", one_line(email.sender)),
        ("To", one_line(email.to)),
        ("Subject", one_line(email.subject)),
        ("Date", date),
        ("Message-ID", message_id),
    ]
    if email.reply_to:
        headers.append(("Reply-To", one_line(email.reply_to)))
    headers += [(one_line(name), one_line(value)) for name, value in email.headers.items()]
    text, html = _plain_body(email.text), _plain_body(email.html)
    if text is None or html is None or not all(_plain_header(n, v) for n, v in headers):
        return bytes(build_message(email, message_id=message_id, date=date))
    boundary = _boundary(text + html)
    lines = [f"{name}: {value}" for name, value in headers]
    lines += ["MIME-Version: 1.0", f'Content-Type: multipart/alternative; boundary="{boundary}"']
    head = "\r\n".join(lines) + "\r\n\r\n"
    part = 'Content-Type: text/{}; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit\r\n'
    return (
        f"{head}--{boundary}\r\n{part.format('plain')}\r\n{text}\r\n"
        f"--{boundary}\r\n{part.format('html')}MIME-Version: 1.0\r\n\r\n{html}\r\n"
        f"--{boundary}--\r\n"
    ).encode("ascii")


def _plain_header(name: str, value: str) -> bool:
    if not name or not _PLAIN_VALUE.fullmatch(name + value) or "=?" in value:
        return False
    if name.lower() in _ADDRESS_HEADERS and not _PLAIN_ADDRESS.fullmatch(value):
        return False
    return len(name) + 2 + len(value) <= _MAX_LINE and value == value.strip()


def _plain_body(body: str) -> str | None:
    """The body as set_content writes it in 7bit (CRLF line ends, one at the end), or None
    when it needs an encoding (non-ASCII, or a line too long)."""
    if not body.isascii():
        return None
    lines = body.encode("ascii").splitlines()
    if any(len(line) > _MAX_LINE for line in lines):
        return None
    return "\r\n".join(line.decode("ascii") for line in lines) + "\r\n"


def _boundary(bodies: str) -> str:
    while True:  # as the email package makes one: never a line of the bodies
        boundary = "=" * 15 + f"{secrets.randbelow(sys.maxsize):019d}" + "=="
        if boundary not in bodies:
            return boundary


def _domain(sender: str) -> str:
    address = sender.rsplit("<", 1)[-1].rstrip(">")
    return address.rsplit("@", 1)[-1] or "localhost"

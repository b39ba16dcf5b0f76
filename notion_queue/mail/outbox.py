"""The embedded default Mailer: each message becomes a real .eml file in OUTBOX_DIR.

Open one with any mail client to see what a recipient would. Idempotency works as Resend's:
the same key twice writes one file and answers its id.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from notion_queue.clock import Clock
from notion_queue.mail.base import OutgoingEmail, SendResult
from notion_queue.private_files import private_dir
from notion_queue.render import one_line


class OutboxMailer:
    def __init__(self, folder: Path, clock: Clock) -> None:
        self.folder = Path(folder)
        private_dir(self.folder)
        self._keys = self.folder / ".idempotency"
        private_dir(self._keys)
        self.clock = clock

    def send(self, email: OutgoingEmail) -> SendResult:
        key_file = self._keys / hashlib.sha256(email.idempotency_key.encode()).hexdigest()
        if key_file.exists():
            return SendResult(json.loads(key_file.read_text())["id"], replayed=True)
        now = self.clock.now()
        message_id = make_msgid(domain=_domain(email.sender))
        msg = build_message(email, message_id=message_id, date=format_datetime(now))
        stem = f"{now.strftime('%Y%m%dT%H%M%S')}-{hashlib.sha256(message_id.encode()).hexdigest()[:10]}"
        _atomic_write(self.folder / f"{stem}.eml", bytes(msg))
        outbox_id = message_id.strip("<>")
        _atomic_write(key_file, json.dumps({"id": outbox_id, "file": f"{stem}.eml"}).encode())
        return SendResult(outbox_id)

    def close(self) -> None:
        pass


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


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""The Mailer port: send one message, carrying an idempotency key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class OutgoingEmail:
    sender: str
    to: str
    subject: str
    html: str
    text: str
    idempotency_key: str
    reply_to: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    message_id: str
    # For the logs only: True when the mailer knows this key was sent before (the outbox does).
    # Resend answers a replay exactly as the first send, so through Resend it is always False.
    replayed: bool = False


class Mailer(Protocol):
    def send(self, email: OutgoingEmail) -> SendResult:
        """Send once per idempotency key: the same key again answers the first message's id.

        Raises RetryableError (try later with the same key), MaybeWritten (may have been sent:
        retry with the same key), PermanentError (this message will never go) or AccountError.
        """
        ...

    def close(self) -> None: ...

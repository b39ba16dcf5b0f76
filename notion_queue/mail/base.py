"""The Mailer port: send one message, carrying an idempotency key; a BatchMailer also sends
many at once under one key (Resend's batch API; see mail/batch.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


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


@runtime_checkable
class BatchMailer(Mailer, Protocol):
    def send_batch(self, emails: Sequence[OutgoingEmail], idempotency_key: str) -> list[SendResult]:
        """Send these emails in one request, once per `idempotency_key` (which names exactly
        this set: the same key again answers the first ids, in the same order, and sends
        nothing). All or nothing: raises as `send` does, for the batch as a whole."""
        ...

"""Resend's batch API from our side: which emails may go in a batch, and the batch's key.

Resend takes up to 100 emails per `POST /emails/batch` under one Idempotency-Key, and validates
a batch as a whole (strict mode: one bad item fails every item, and nothing is sent). So:

- `batch_problem` checks each email before it joins a batch; one that fails goes alone (and
  fails alone), never in a batch.
- `Batch.of` fixes a batch's order (by row id) and derives its key from exactly that set: the
  sorted row ids and each email's own key. A batch that failed is re-sent as it was, with the
  same key, never regrouped: the same key with a different body is refused by Resend (409
  invalid_idempotent_request), and a regrouped set under a new key would send again what the
  first request may already have sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from notion_queue.addresses import address_problem
from notion_queue.mail.base import OutgoingEmail

MAX_BATCH = 100  # Resend's limit per request
_TAG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_HEADER_NAME_CHARS = _TAG_CHARS | frozenset("!#$%&'*+.^`|~")  # an HTTP token


def batch_problem(email: OutgoingEmail) -> str | None:
    """Why Resend would refuse this email (and with it its whole batch), or None."""
    if (problem := address_problem(email.to)) is not None:
        why = problem or "it does not look like name@example.com"
        return f"the address {email.to!r} cannot be sent to: {why}"
    if not email.subject:
        return "the email has no subject"
    if not (email.html or email.text):
        return "the email has no body"
    for name, value in email.tags.items():
        for part in (name, value):
            if not part or len(part) > 256 or not set(part) <= _TAG_CHARS:
                return f"the tag {name!r} is not a valid Resend tag"
    for name, value in email.headers.items():
        if not name or not set(name) <= _HEADER_NAME_CHARS or "\r" in value or "\n" in value:
            return f"the header {name!r} is not a valid header"
    return None


@dataclass(frozen=True)
class Batch:
    """A fixed set of (row id, email), in row id order, with the key that names exactly it."""

    row_ids: tuple[str, ...]
    emails: tuple[OutgoingEmail, ...]
    idempotency_key: str

    @classmethod
    def of(cls, items: Iterable[tuple[str, OutgoingEmail]]) -> Batch:
        ordered = sorted(items, key=lambda item: item[0])
        if not 1 <= len(ordered) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} emails, not {len(ordered)}")
        if len({row_id for row_id, _ in ordered}) != len(ordered):
            raise ValueError("a row appears twice in one batch")
        return cls(
            row_ids=tuple(row_id for row_id, _ in ordered),
            emails=tuple(email for _, email in ordered),
            idempotency_key=batch_key(ordered),
        )


def batch_key(items: Iterable[tuple[str, OutgoingEmail]]) -> str:
    """The Idempotency-Key of the batch of exactly these rows with exactly these emails
    (72 characters; Resend allows 256)."""
    digest = hashlib.sha256()
    for row_id, email in sorted(items, key=lambda item: item[0]):
        digest.update(row_id.encode() + b"\x00" + email.idempotency_key.encode() + b"\x00")
    return f"notion-queue-batch/{digest.hexdigest()[:52]}"

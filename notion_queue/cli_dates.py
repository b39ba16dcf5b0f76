"""The moments an operator types on the command line (`retry-failed --since ...`), read against
the injected clock's now. Every result is timezone-aware; a date or time without a zone is UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

ACCEPTED = (
    "today, yesterday, Nd or Nh ago (3d, 12h), or an ISO date or time "
    "(2025-12-01, 2025-12-01T14:00, 2025-12-01T14:00:00+01:00; without a zone: UTC)"
)
_AGO = re.compile(r"(\d{1,5})([dh])")


def parse_since(text: str, now: datetime) -> datetime:
    """Raise ValueError naming every accepted form when `text` is none of them."""
    value = text.strip().lower()
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if value == "today":
        return midnight
    if value == "yesterday":
        return midnight - timedelta(days=1)
    ago = _AGO.fullmatch(value)
    if ago:
        amount, unit = int(ago.group(1)), ago.group(2)
        return now - (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a moment notion-queue reads; use {ACCEPTED}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)

"""A due row outside its sequence's send window (a marketer moved it, or the catalog gained a
window since it was written) is moved to the window's next opening, in the recipient's zone, and
says why; when that opening comes after its Expires At, it is skipped instead."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from notion_queue.models import QueueRow, utc_text
from notion_queue.timezones import row_zone
from notion_queue.windows import Window


@dataclass(frozen=True)
class WindowMove:
    when: datetime
    reason: str
    skip: bool = False


def outside_window(
    row: QueueRow, windows: dict[str, Window], default_zone: ZoneInfo
) -> WindowMove | None:
    window = windows.get(row.sequence)
    if window is None or row.scheduled_time is None:
        return None
    try:
        zone = row_zone(row.variables(), default_zone)
    except ValueError:
        zone = default_zone  # broken Variables: row_checks has failed the row already
    if window.contains(row.scheduled_time, zone):
        return None
    opening = window.next_open(row.scheduled_time, zone).astimezone(UTC)
    where = f"the send window ({window.describe()} {zone.key})"
    if row.expires_at is not None and opening > row.expires_at:
        return WindowMove(
            opening, f"skipped: {where} opens only after {utc_text(row.expires_at)}", True
        )
    return WindowMove(opening, f"moved to {where}: {utc_text(opening)}")

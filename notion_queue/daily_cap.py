"""MAX_EMAILS_PER_DAY: at most so many emails per address per day of the recipient's calendar.

Intake counts from the rows of the address it reads anyway (no extra Notion request): rows sent,
or still to send (queued, review, paused, waiting), of sequences that are not cap_exempt. A new
row on a full day is not dropped: it moves a day on, at the same local time (then into its
sequence's window), until a day has room, and says so in its Error Message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from notion_queue.models import ACTIVE_STATUSES, QueueRow, Status
from notion_queue.sequences import Catalog
from notion_queue.timezones import local_day
from notion_queue.windows import Window

_COUNTED = ACTIVE_STATUSES | {Status.SENT}
MAX_DAYS_AHEAD = 366


class DailyCap:
    def __init__(self, limit: int, zone: ZoneInfo) -> None:
        self.limit = limit
        self.zone = zone
        self.counts: Counter[str] = Counter()

    @classmethod
    def from_rows(
        cls, limit: int, zone: ZoneInfo, rows: Iterable[QueueRow], catalog: Catalog, *, skip: str
    ) -> DailyCap:
        """The days already taken by the address's rows; rows whose Dedupe Key starts with
        `skip` (this event's own, on a retry) are made again by the event, so not counted."""
        cap = cls(limit, zone)
        for row in rows:
            sequence = catalog.sequences.get(row.sequence)
            if sequence is not None and sequence.timing.cap_exempt:
                continue
            if row.status not in _COUNTED or (skip and row.dedupe_key.startswith(skip)):
                continue
            when = row.sent_at if row.status is Status.SENT else row.scheduled_time
            if when is not None:
                cap.counts[local_day(when, zone)] += 1
        return cap

    def place(self, when: datetime, window: Window | None) -> tuple[datetime, str]:
        """The first time from `when` on a day with room (inside the window), taken; and why
        it moved ("" when it did not)."""
        wanted = when
        for _ in range(MAX_DAYS_AHEAD):
            day = local_day(when, self.zone)
            if self.counts[day] < self.limit:
                self.counts[day] += 1
                if when == wanted:
                    return when, ""
                return when, (
                    f"moved: MAX_EMAILS_PER_DAY ({self.limit}) already reached on "
                    f"{local_day(wanted, self.zone)} ({self.zone.key})"
                )
            local = when.astimezone(self.zone)
            next_day = datetime.combine(
                local.date() + timedelta(days=1), local.time().replace(fold=0), tzinfo=self.zone
            )
            when = next_day if window is None else window.next_open(next_day, self.zone)
        raise AssertionError("a day with room within a year")

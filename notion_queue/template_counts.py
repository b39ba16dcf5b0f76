"""The Templates database shows how each template performs (Sent, Delivered, Opened, Clicked,
Bounced, Complained, Unsubscribed), counted as `notion-queue report` counts them.

The worker recounts every 10 minutes (the first time 10 minutes after it starts) and writes a template's row only when its counts
changed, so each row is written at most once every 10 minutes. A recount reads the sent rows
(one request per 100), the Unsubscribed contacts (one) and the Templates (one per 100), then
one update per template whose counts changed: with 2 000 sent emails, 22 requests every 10
minutes plus the changed rows (about 0.04 requests/s, under 2 % of Notion's 3/s).

After the first recount, a recount happens only when something it counts may have changed: a
sent row or a contact edited since the last one (Delivery, a new send, an Unsubscribed box),
asked with one single-row query each. So an idle worker pays 2 requests each 10 minutes,
whatever the history holds, instead of reading every sent row again.

Why not Notion's own relation and rollup properties (no requests at all): a rollup sums or
counts a property of related rows, so every queue row would need a relation to its template
(intake knows the Template ID, not its page: a look-up per row, or a second write at send) and
one formula property per state (Opened = Delivery is opened or clicked, …) to sum; and the
"unsubscribed" count depends on the address's later emails, which no formula on the row sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from notion_queue.clock import Clock
from notion_queue.errors import NotionQueueError, PermanentError
from notion_queue.logs import get_logger
from notion_queue.report import COUNTS, SentRowSource, Tally, build_report

log = get_logger(__name__)
COUNTS_EVERY_SECONDS = 600.0
# Edits are looked for from this long before the last recount began: Notion stamps an edit to
# the minute (the filter matches the whole minute), and this host's clock may be off Notion's.
EDIT_MARGIN = timedelta(minutes=2)


class CountsDesk(Protocol):
    def template_counts(self) -> dict[str, tuple[str, dict[str, int]]]: ...

    def write_counts(self, page_id: str, counts: dict[str, int], at: datetime) -> None: ...

    def counted_edits_since(self, since: datetime) -> bool: ...


@dataclass
class TemplateCounts:
    rows: SentRowSource
    desk: CountsDesk
    clock: Clock
    every: float = COUNTS_EVERY_SECONDS
    _counted: float | None = None
    _recounted_at: datetime | None = None  # when the last full recount began

    def already_counted(self, at: datetime) -> None:
        """As if a recount began at `at`: the next one only if something was edited since (the
        bench's idle hour starts from counted rows instead of reading the whole history)."""
        self._counted = self.clock.monotonic()
        self._recounted_at = at

    def run_once(self) -> int:
        """Recount when due; the number of template rows written. Never raises: a store that
        fails now is tried again at the next poll."""
        now = self.clock.monotonic()
        if self._counted is None:  # the first recount comes `every` after start-up, so a
            self._counted = now  # restart (or a short run) costs nothing extra
            return 0
        if now - self._counted < self.every:
            return 0
        started = self.clock.now()
        try:
            last = self._recounted_at
            if last is not None and not self.desk.counted_edits_since(last - EDIT_MARGIN):
                self._counted = now  # nothing counted was edited: the rows show the counts
                return 0
            report = build_report(self.rows, None)
            written = 0
            for template_id, (page_id, shown) in self.desk.template_counts().items():
                tally = report.by_template.get(template_id, Tally())
                counts = {name: tally.count(name) for name in COUNTS}
                if counts != shown:
                    self.desk.write_counts(page_id, counts, self.clock.now())
                    written += 1
        except PermanentError as exc:  # the Templates database lacks the properties
            self.every = float("inf")
            log.error(
                "template_counts_off",
                reason=str(exc),
                action="re-run scripts/setup_notion.py to add the count properties",
            )
            return 0
        except NotionQueueError as exc:
            log.warning("template_counts_deferred", reason=str(exc))
            return 0
        self._counted = now
        self._recounted_at = started
        if written:
            log.info("template_counts_written", templates=written, sent_rows=report.rows_read)
        return written

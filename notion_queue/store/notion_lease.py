"""The queue's lease on Notion: one row in the Workers database, read as "worker HOLDER sends
the Email Queue until LEASE UNTIL". One worker serves a queue across hosts.

Notion has no conditional writes, so a claim is written, then read back after a moment, and kept
only if it is still ours. A create whose outcome is unknown (MaybeWritten) is settled by that
same read-back. A renewal while our lease still runs is one update: no other worker claims a
lease that has not lapsed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from notion_queue.errors import MaybeWritten, RetryableError
from notion_queue.store import notion_schema as s
from notion_queue.store.notion_gateway import NotFound, NotionGateway, unshared

LEASE_QUEUE = "Email Queue"  # the lease row's title: the queue it guards
LEASE_CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class LeaseRow:
    page_id: str
    holder: str
    until: datetime | None  # None: never set, or cleared by hand: free to claim


def lease_properties(holder: str, until: datetime, now: datetime) -> dict[str, Any]:
    return s.checked(
        {
            s.WORKER_QUEUE: s.title(LEASE_QUEUE),
            s.WORKER_HOLDER: s.text(holder),
            s.LEASE_UNTIL: s.date(until),
            s.RENEWED_AT: s.date(now),
        }
    )


def page_to_lease(page: dict[str, Any]) -> LeaseRow:
    p = page.get("properties", {})
    return LeaseRow(
        page_id=str(page["id"]),
        holder=s.read_text(p.get(s.WORKER_HOLDER)).strip(),
        until=s.read_date(p.get(s.LEASE_UNTIL)),
    )


class NotionLease:
    def __init__(self, gateway: NotionGateway, workers_ds: Callable[[], str]) -> None:
        """`workers_ds` answers the Workers data source, resolved on first use."""
        self.gateway = gateway
        self._workers_ds = workers_ds
        self._held: tuple[str, str, datetime] | None = None  # page id, holder, until

    def claim(self, holder: str, now: datetime, ttl_seconds: float) -> str | None:
        """None when `holder` holds the queue now, else who does."""
        until = now + timedelta(seconds=ttl_seconds)
        props = lease_properties(holder, until, now)
        held = self._held
        if held is not None and held[1] == holder and now < held[2]:
            self.gateway.update_page(held[0], props, call="update_lease")
            self._held = (held[0], holder, until)
            return None
        self._held = None
        for _ in range(LEASE_CLAIM_ATTEMPTS):
            lease = self._row()
            if lease is None:
                with contextlib.suppress(MaybeWritten):  # the read-back tells if it was saved
                    self.gateway.create_page(self._workers_ds(), props, call="create_lease")
            elif lease.holder != holder and lease.until is not None and lease.until > now:
                return f"{lease.holder} (lease until {s.iso(lease.until)})"
            else:
                self.gateway.update_page(lease.page_id, props, call="update_lease")
            self.gateway.clock.sleep(1.0)  # let a rival's simultaneous claim land first
            again = self._row()
            if again is None:
                continue  # our create was not saved: claim again
            if again.holder != holder:
                return f"{again.holder} (won the race for the lease)"
            self._held = (again.page_id, holder, until)
            return None
        raise RetryableError("Notion did not save the queue's lease; try again")

    def release(self, holder: str, now: datetime) -> None:
        """Let the lease lapse now, if `holder` has it, so another worker may start at once."""
        held, self._held = self._held, None
        if held is not None and held[1] == holder:
            page_id = held[0]
        else:
            lease = self._row()
            if lease is None or lease.holder != holder:
                return
            page_id = lease.page_id
        self.gateway.update_page(page_id, {s.LEASE_UNTIL: s.date(now)}, call="update_lease")

    def _row(self) -> LeaseRow | None:
        """The queue's lease row; where a hand-made copy exists, the older row wins."""
        data_source = self._workers_ds()
        try:
            answer = self.gateway.query_data_source(
                data_source,
                call="query_workers",
                filter={"property": s.WORKER_QUEUE, "title": {"equals": LEASE_QUEUE}},
                sorts=[{"timestamp": "created_time", "direction": "ascending"}],
                page_size=1,
            )
        except NotFound as exc:
            raise unshared(data_source, exc) from None
        results = answer.get("results") or []
        return page_to_lease(results[0]) if results else None

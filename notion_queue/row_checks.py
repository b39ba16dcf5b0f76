"""Whether a row the worker holds may be sent now, judged on the row alone.

A row a marketer broke (no address, no template, Variables that are not JSON, a Status that is
not one) fails with what to fix; a row paused, already finished or moved later is left as it
is; a row whose moment passed is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from notion_queue.addresses import address_problem
from notion_queue.models import QueueRow, Status, utc_text


@dataclass(frozen=True)
class NotNow:
    """Why a row is not sent now: `leave` it as it is, `fail` it or `skip` it, with the reason
    the row's Error Message shows."""

    action: Literal["leave", "fail", "skip"]
    reason: str = ""


LEAVE = NotNow("leave")


def not_sendable(row: QueueRow, now: datetime) -> NotNow | None:
    """None when the row is queued, due, not expired and complete."""
    if row.status is not Status.QUEUED:
        if row.status is None:
            return NotNow(
                "fail",
                f"Status {row.status_text!r} is not a status; set it to queued, paused or "
                "cancelled",
            )
        return LEAVE
    if row.scheduled_time is None:
        return NotNow("fail", "Scheduled Time is empty; set it and set Status to queued")
    if row.scheduled_time > now:
        return LEAVE
    if row.expires_at is not None and now >= row.expires_at:
        return NotNow(
            "skip",
            f"expired: its moment passed at {utc_text(row.expires_at)} before it could be sent",
        )
    problem = row_problem(row)
    return NotNow("fail", problem) if problem else None


def row_problem(row: QueueRow) -> str | None:
    """What a marketer must fix in the row before it can be sent."""
    if not row.email:
        return "Email Address is empty; fill it in and set Status to queued"
    why = address_problem(row.email)  # the rule webhooks follow (notion_queue.addresses)
    if why is not None:
        return (
            f"Email Address {row.email!r} is not a valid address{f' ({why})' if why else ''};"
            " fix it and set Status to queued"
        )
    if not row.template_id:
        return "Template ID is empty; fill it in and set Status to queued"
    try:
        row.variables()
    except ValueError as exc:
        return f"Variables is not a valid JSON object ({exc}); fix it and set Status to queued"
    return None

"""A row and its template in, the email to send out: variables, links checked, rendered, with
the unsubscribe headers, the tags and the idempotency key.

The key is derived from the row and the rendered message, so a worker killed between "sent" and
"marked sent" sends the same key again and the mailer answers with the first email; a message
edited in between (a marketer fixed the template) is a new message with a new key.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from notion_queue.event_fields import FieldSpec, safe_url_fields, url_field_names, with_fallbacks
from notion_queue.link_guard import check_links, link_targets
from notion_queue.mail.base import OutgoingEmail
from notion_queue.models import QueueRow, Template
from notion_queue.render import RenderedEmail, render
from notion_queue.timezones import UTC_ZONE, localised, row_zone
from notion_queue.unsubscribe import UnsubscribeTokens


@dataclass(frozen=True)
class Composer:
    sender: str
    reply_to: str | None = None
    public_base_url: str = "http://localhost:8000"
    campaign_variables: dict[str, Any] = field(default_factory=dict)
    event_fields: dict[str, FieldSpec] = field(default_factory=dict)  # the catalog's [fields]
    unsubscribe: UnsubscribeTokens | None = None
    default_zone: ZoneInfo = UTC_ZONE  # DEFAULT_TIMEZONE: a row that names no zone

    def compose(self, row: QueueRow, template: Template) -> OutgoingEmail:
        """Raises a PermanentError (a RenderError) when the template cannot make this email."""
        check_links(template, self.link_targets)
        return self.outgoing(row, render(template, self.variables(row)))

    @property
    def link_targets(self) -> frozenset[str]:
        return link_targets(self.campaign_variables, url_field_names(self.event_fields))

    def variables(self, row: QueueRow) -> dict[str, Any]:
        fields = self.event_fields
        # A url a row carries is checked again: rows written before the check, or edited since.
        variables = safe_url_fields(row.variables(), fields)
        # The row's First Name is what a marketer sees and may edit: it wins over the captured one.
        variables.pop("first_name", None)
        if row.first_name:
            variables["first_name"] = row.first_name
        variables = with_fallbacks(variables, fields)
        # Times are stored ISO 8601; the recipient reads them in their own zone.
        variables = localised(variables, self.time_names, row_zone(variables, self.default_zone))
        # The business's own values come last: no event (nor an old row) can change them.
        variables.update(self.campaign_variables)
        variables["email"] = row.email
        if self.unsubscribe is not None:
            variables["unsubscribe_url"] = self.unsubscribe.url(self.public_base_url, row.email)
        return variables

    @property
    def time_names(self) -> frozenset[str]:
        """The variables that hold a time: the meeting's, and every declared datetime field."""
        declared = {name for name, spec in self.event_fields.items() if spec.type == "datetime"}
        return frozenset({"meeting_time", *declared})

    def outgoing(self, row: QueueRow, rendered: RenderedEmail) -> OutgoingEmail:
        headers: dict[str, str] = {}
        if self.unsubscribe is not None:
            headers["List-Unsubscribe"] = (
                f"<{self.unsubscribe.url(self.public_base_url, row.email)}>"
            )
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return OutgoingEmail(
            sender=self.sender,
            to=row.email,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            reply_to=self.reply_to,
            idempotency_key=idempotency_key(row.id, row.email, self.sender, rendered),
            headers=headers,
            tags={"sequence": tag(row.sequence), "template": tag(row.template_id)},
        )


def idempotency_key(row_id: str, to: str, sender: str, rendered: RenderedEmail) -> str:
    digest = hashlib.sha256(
        "\x00".join((to, sender, rendered.subject, rendered.html, rendered.text)).encode()
    ).hexdigest()[:24]
    return f"notion-queue/{row_id}/{digest}"


def tag(value: str) -> str:
    """A Resend tag value: ASCII letters, digits, _ and - only, at most 256 characters."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", value)[:256] or "none"

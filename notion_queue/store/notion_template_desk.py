"""The Templates rows that ask the worker for something: a test send (`Send Test To` is set) or
a Preview link (missing, or not on PUBLIC_BASE_URL). One filtered query a poll finds them all;
answering one is one page update (it clears the request in the same write). And the counts of
how each template performs (Sent, Delivered, …), which the worker keeps current, and whether
anything they count was edited since the last recount."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from notion_queue.models import Status
from notion_queue.store import notion_schema as s
from notion_queue.store.notion_gateway import NotionGateway
from notion_queue.template_requests import TemplateRequest


class NotionTemplateDesk:
    def __init__(
        self,
        gateway: NotionGateway,
        templates_ds: Callable[[], str],
        queue_ds: Callable[[], str] | None = None,
        contacts_ds: Callable[[], str] | None = None,
    ) -> None:
        self.gateway = gateway
        self._templates_ds = templates_ds
        self._queue_ds = queue_ds
        self._contacts_ds = contacts_ds

    def template_requests(self, preview_prefix: str) -> list[TemplateRequest]:
        response = self.gateway.query_data_source(
            self._templates_ds(),
            call="query_template_requests",
            filter={
                "or": [
                    {"property": s.SEND_TEST_TO, "email": {"is_not_empty": True}},
                    {"property": s.PREVIEW, "url": {"is_empty": True}},
                    {"property": s.PREVIEW, "url": {"does_not_contain": preview_prefix}},
                ]
            },
            page_size=100,
        )
        requests = []
        for page in response.get("results", []):
            p = page.get("properties", {})
            template_id = s.read_text(p.get("Template ID")).strip()
            if template_id:
                requests.append(
                    TemplateRequest(
                        page_id=page["id"],
                        template_id=template_id,
                        send_test_to=s.read_email(p.get(s.SEND_TEST_TO)).strip(),
                        preview_url=str((p.get(s.PREVIEW) or {}).get("url") or ""),
                        edited=str(page.get("last_edited_time", "")),
                    )
                )
        return requests  # more than 100 at once: the rest come at the next polls

    def answer(
        self,
        page_id: str,
        *,
        preview_url: str | None = None,
        tested_at: datetime | None = None,
        result: str | None = None,
    ) -> None:
        props: dict[str, Any] = {}
        if preview_url is not None:
            props[s.PREVIEW] = {"url": preview_url}
        if tested_at is not None:
            props[s.SEND_TEST_TO] = {"email": None}
            props[s.LAST_TEST] = s.date(tested_at)
            props[s.TEST_RESULT] = s.error_text(result or "")
        if props:
            self.gateway.update_page(page_id, props, call="answer_template_request")

    def template_counts(self) -> dict[str, tuple[str, dict[str, int]]]:
        """Template ID → (page id, the counts the row shows), in one query per 100 rows."""
        found: dict[str, tuple[str, dict[str, int]]] = {}
        cursor: str | None = None
        while True:
            body: dict[str, Any] = {"page_size": 100}
            if cursor:
                body["start_cursor"] = cursor
            response = self.gateway.query_data_source(
                self._templates_ds(), call="query_template_counts", **body
            )
            for page in response.get("results", []):
                p = page.get("properties", {})
                template_id = s.read_text(p.get("Template ID")).strip()
                counts = {
                    key: int(s.read_number(p.get(name)) or 0)
                    for key, name in s.COUNT_PROPERTIES.items()
                }
                if template_id:
                    found.setdefault(template_id, (page["id"], counts))
            cursor = response.get("next_cursor")
            if not response.get("has_more") or not cursor:
                return found

    def counted_edits_since(self, since: datetime) -> bool:
        """Whether a sent row or a contact (its Unsubscribed box) was edited on or after
        `since`: the counts may have changed. One row asked of each data source, the contacts
        only when no sent row was edited. Notion stamps edits to the minute: an edit in the
        same minute as `since` matches, so the caller only leaves a margin for clock skew.
        Without the queue and contacts data sources it cannot tell: always True."""
        if self._queue_ds is None or self._contacts_ds is None:
            return True
        edited = {
            "timestamp": "last_edited_time",
            "last_edited_time": {"on_or_after": s.iso(since)},
        }
        sent = {"property": s.STATUS, "select": {"equals": Status.SENT.value}}
        for data_source, condition, call in (
            (self._queue_ds, {"and": [sent, edited]}, "query_counts_edited_rows"),
            (self._contacts_ds, edited, "query_counts_edited_contacts"),
        ):
            response = self.gateway.query_data_source(
                data_source(), call=call, filter=condition, page_size=1
            )
            if response.get("results"):
                return True
        return False

    def write_counts(self, page_id: str, counts: dict[str, int], at: datetime) -> None:
        props: dict[str, Any] = {
            name: {"number": counts[key]} for key, name in s.COUNT_PROPERTIES.items()
        }
        props[s.COUNTS_UPDATED] = s.date(at)
        self.gateway.update_page(page_id, props, call="write_template_counts")

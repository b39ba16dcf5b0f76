"""What a Templates row may ask the worker for (a test send, a Preview link), the store role
that finds and answers such rows (Notion: store/notion_template_desk.py), and the shape of the
worker's jobs on the Templates database (test_sends.py, template_counts.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class TemplateRequest:
    page_id: str
    template_id: str
    send_test_to: str  # empty: only the Preview link needs writing
    preview_url: str
    edited: str  # the row's last edit: one test request, one idempotency key


class TemplateDesk(Protocol):
    """The store's side: the Templates rows asking for something, and the answer to one."""

    def template_requests(self, preview_prefix: str) -> list[TemplateRequest]: ...

    def answer(
        self,
        page_id: str,
        *,
        preview_url: str | None = None,
        tested_at: datetime | None = None,
        result: str | None = None,
    ) -> None: ...


class TemplateJob(Protocol):
    def run_once(self) -> int:
        """Do what is due now (each job paces itself); never raises."""
        ...

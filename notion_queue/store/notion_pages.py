"""Template page bodies in Notion: read them (only when a page changed), write them (seeding).

Reading a page body costs one `GET /v1/blocks/{id}/children` per 100 blocks, plus one per block
with nested blocks (a nested list). The Templates query already answers each page's
last_edited_time, so a body is read again only when its page changed: steady-state sending costs
no request more than before. Notion cuts last_edited_time to the minute, so a body read within
the minute after an edit is read once more at the next refresh (an edit later in that same
minute would not move the timestamp).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dateutil import parser as dateparser

from notion_queue.store.notion_gateway import NotionGateway

PAGE_SIZE = 100
SETTLED = timedelta(seconds=60)


@dataclass(frozen=True)
class _Body:
    edited: str  # the page's last_edited_time when it was read
    blocks: str  # JSON
    settled: bool  # read a full minute after that edit: no later edit can hide behind it


class PageBodies:
    def __init__(self, gateway: NotionGateway) -> None:
        self.gateway = gateway
        self._bodies: dict[str, _Body] = {}
        self._lock = threading.Lock()

    def body(self, page: dict[str, Any]) -> str:
        """The page body of a Templates page as JSON blocks, read only when the page changed."""
        page_id, edited = str(page["id"]), str(page.get("last_edited_time", ""))
        with self._lock:
            known = self._bodies.get(page_id)
        if known is not None and known.edited == edited and known.settled:
            return known.blocks
        blocks = json.dumps(self.read(page_id), ensure_ascii=False, sort_keys=True)
        settled = bool(edited) and self.gateway.clock.now() >= dateparser.isoparse(edited) + SETTLED
        with self._lock:
            self._bodies[page_id] = _Body(edited, blocks, settled)
        return blocks

    def read(self, block_id: str) -> list[dict[str, Any]]:
        """Every block under a page (or block), nested ones under `block[type]["children"]`."""
        blocks: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            kwargs: dict[str, Any] = {"page_size": PAGE_SIZE}
            if cursor:
                kwargs["start_cursor"] = cursor
            response = self.gateway.list_block_children(
                block_id, call="list_template_blocks", **kwargs
            )
            blocks.extend(response.get("results", []))
            cursor = response.get("next_cursor")
            if not response.get("has_more") or not cursor:
                break
        for block in blocks:
            kind = str(block.get("type"))
            if block.get("has_children") and isinstance(block.get(kind), dict):
                block[kind]["children"] = self.read(str(block["id"]))
        return blocks

    def replace(self, page_id: str, blocks: list[dict[str, Any]]) -> None:
        """Seeding: the page body becomes `blocks` (write format): old blocks trashed, new ones
        appended 100 at a time."""
        for old in self.read(page_id):
            self.gateway.delete_block(str(old["id"]), call="delete_template_block")
        self.append(page_id, blocks)

    def append(self, page_id: str, blocks: list[dict[str, Any]]) -> None:
        for start in range(0, len(blocks), PAGE_SIZE):
            self.gateway.append_block_children(
                page_id, blocks[start : start + PAGE_SIZE], call="append_template_blocks"
            )

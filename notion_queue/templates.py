"""Where a template comes from at send time: the Templates database, or the packaged file.

The whole Templates database is read in one request at most once every TEMPLATE_CACHE_SECONDS,
so marketers' edits apply within minutes without a Notion request per email (or per template).
A template whose HTML Body is empty is its page body (blocks_email.py), asked of the store only
when that template is used (Notion reads it again only after its page changed) and made into
template text once per refresh. The packaged templates are documents too (html_blocks.py), as
seeding writes them, so the embedded default sends what Notion would.
"""

from __future__ import annotations

import json
import threading
import tomllib
from dataclasses import replace
from importlib import resources

from notion_queue.blocks_email import with_page_body
from notion_queue.clock import Clock
from notion_queue.errors import ConfigError, RenderError, TemplateNotFound
from notion_queue.html_blocks import html_to_blocks
from notion_queue.logs import get_logger
from notion_queue.models import Template
from notion_queue.store.base import TemplateStore

log = get_logger(__name__)


def load_packaged_templates() -> dict[str, Template]:
    """The templates shipped in notion_queue/email_templates, by Template ID."""
    folder = resources.files("notion_queue").joinpath("email_templates")
    templates: dict[str, Template] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        template_id = entry.name.removesuffix(".toml")
        try:
            data = tomllib.loads(entry.read_text("utf-8"))
            templates[template_id] = Template(
                template_id=template_id,
                subject=str(data["subject"]),
                html=str(data["html"]),
                text=str(data.get("text", "")),
            )
        except (tomllib.TOMLDecodeError, KeyError) as exc:
            raise ConfigError(f"packaged template {entry.name}: {exc}") from None
    return templates


def packaged_documents() -> dict[str, Template]:
    """The packaged templates as page bodies (HTML and Text Body empty): what seeding writes."""
    return {
        template_id: replace(
            template,
            html="",
            text="",
            blocks=json.dumps(html_to_blocks(template.html), ensure_ascii=False),
        )
        for template_id, template in load_packaged_templates().items()
    }


class TemplateSource:
    def __init__(
        self,
        store: TemplateStore,
        clock: Clock,
        *,
        cache_seconds: float = 300,
        packaged: dict[str, Template] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._packaged = {
            template_id: with_page_body(template)
            for template_id, template in (
                packaged_documents() if packaged is None else packaged
            ).items()
        }
        self._stored: dict[str, Template] = {}
        # Per refresh: a used template with its page body made into template text, or why not.
        self._resolved: dict[str, Template | RenderError] = {}
        self._fetched: float | None = None
        self._warned: set[str] = set()
        self._lock = threading.Lock()  # the worker renders from several threads

    def _snapshot(self) -> dict[str, Template]:
        with self._lock:
            now = self._clock.monotonic()
            if self._fetched is None or now - self._fetched >= self._cache_seconds:
                self._stored = self._store.all_templates()
                self._resolved = {}
                self._fetched = now
            return self._stored

    def _with_page_body(self, stored: Template) -> Template:
        with self._lock:
            resolved = self._resolved.get(stored.template_id)
            if resolved is None:
                try:
                    blocks = stored.blocks
                    if not stored.html.strip() and not blocks:
                        blocks = self._store.page_body(stored.template_id)
                    resolved = with_page_body(replace(stored, blocks=blocks))
                except RenderError as exc:
                    resolved = RenderError(f"template {stored.template_id!r}: {exc}")
                self._resolved[stored.template_id] = resolved
        if isinstance(resolved, RenderError):
            raise resolved
        return resolved

    def get(self, template_id: str) -> Template:
        stored = self._snapshot().get(template_id)
        if stored is not None and stored.active:
            return self._with_page_body(stored)
        fallback = self._packaged.get(template_id)
        if fallback is None:
            raise TemplateNotFound(
                f"Template ID {template_id!r} not found in the Templates database; "
                "fix the row's Template ID (or add the template) and set Status to queued"
            )
        if template_id not in self._warned:
            self._warned.add(template_id)
            log.warning(
                "template_fallback",
                template_id=template_id,
                reason="inactive in Templates database" if stored else "missing from Templates",
            )
        return fallback

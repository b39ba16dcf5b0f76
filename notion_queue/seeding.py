"""Upsert the packaged templates into the store's Templates (by Template ID)."""

from __future__ import annotations

from collections.abc import Callable

from notion_queue.models import Template
from notion_queue.store.base import TemplateStore, UpsertResult
from notion_queue.templates import load_packaged_templates


def seed_templates(
    store: TemplateStore,
    templates: dict[str, Template] | None = None,
    *,
    progress: Callable[[int, int, str, UpsertResult], None] | None = None,
) -> dict[UpsertResult, int]:
    templates = load_packaged_templates() if templates is None else templates
    counts: dict[UpsertResult, int] = {"created": 0, "updated": 0, "unchanged": 0}
    for index, (template_id, template) in enumerate(sorted(templates.items()), start=1):
        result = store.upsert_template(template)
        counts[result] += 1
        if progress is not None:
            progress(index, len(templates), template_id, result)
    return counts

"""Upsert the packaged templates into the store's Templates (by Template ID), as page bodies:
a marketer opens one and reads a document. A page a marketer edited is kept unless `force`."""

from __future__ import annotations

from collections.abc import Callable

from notion_queue.models import Template
from notion_queue.store.base import TemplateStore, UpsertResult
from notion_queue.templates import packaged_documents


def seed_templates(
    store: TemplateStore,
    templates: dict[str, Template] | None = None,
    *,
    force: bool = False,
    progress: Callable[[int, int, str, UpsertResult], None] | None = None,
) -> dict[UpsertResult, int]:
    templates = packaged_documents() if templates is None else templates
    counts: dict[UpsertResult, int] = {"created": 0, "updated": 0, "unchanged": 0, "kept": 0}
    for index, (template_id, template) in enumerate(sorted(templates.items()), start=1):
        result = store.upsert_template(template, force=force)
        counts[result] += 1
        if progress is not None:
            progress(index, len(templates), template_id, result)
    return counts

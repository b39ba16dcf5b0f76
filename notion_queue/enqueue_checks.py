"""What `notion-queue enqueue` checks before writing rows, as a webhook's intake would: every
variable the sequence's templates need (the templates as the store holds them, else the
packaged ones), a valid --var timezone, and the daily cap over the address's rows."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from notion_queue.daily_cap import DailyCap
from notion_queue.models import QueueRow
from notion_queue.needed_variables import NeededVariables, missing_message
from notion_queue.sequences import Catalog
from notion_queue.settings import Settings
from notion_queue.store.base import TemplateStore
from notion_queue.templates import load_packaged_templates
from notion_queue.timezones import ZONE_VARIABLE, zone_named


def enqueue_problem(
    catalog: Catalog, store: TemplateStore, sequence: str, variables: dict[str, str]
) -> str | None:
    """Why the rows would fail (what --var to add), or None."""
    if variables.get(ZONE_VARIABLE):
        try:
            zone_named(variables[ZONE_VARIABLE])
        except ValueError as exc:
            return f"--var {ZONE_VARIABLE}: {exc}"
    stored = {t.template_id: t for t in store.all_templates().values() if t.active}
    needed = NeededVariables.of(catalog, {**load_packaged_templates(), **stored})
    missing = needed.missing(sequence, variables)
    if not missing:
        return None
    name = missing[0][0]
    return f"{missing_message(sequence, missing)}; add --var {name}=..."


def enqueue_cap(
    settings: Settings, zone: ZoneInfo, rows: list[QueueRow], catalog: Catalog
) -> DailyCap | None:
    if settings.max_emails_per_day is None:
        return None
    return DailyCap.from_rows(settings.max_emails_per_day, zone, rows, catalog, skip="")

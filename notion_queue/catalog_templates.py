"""Every template the catalog names must exist: packaged, or an Active row in the Templates
database. The packaged ones are known at load; the others only once the store answers (the
server and the worker start while Notion is down), so they are checked then."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Protocol

from notion_queue.errors import ConfigError, RetryableError
from notion_queue.logs import get_logger
from notion_queue.models import Template
from notion_queue.pacing import Backoff
from notion_queue.sequences import Catalog

log = get_logger(__name__)


class TemplatesReader(Protocol):
    def all_templates(self) -> dict[str, Template]: ...


def templates_outside(catalog: Catalog, packaged: Collection[str]) -> list[tuple[str, str]]:
    """(where, Template ID) of each step whose template is not packaged."""
    return [
        (f"{catalog.where}: sequence {sequence.name!r} step {step.number}", step.template_id)
        for sequence in catalog.sequences.values()
        for step in sequence.steps
        if step.template_id not in packaged
    ]


def check_stored_templates(
    catalog: Catalog, packaged: Collection[str], store: TemplatesReader
) -> None:
    """One read of the Templates database (none when every template is packaged); ConfigError,
    one line saying where, for the first template that is nowhere to be found."""
    outside = templates_outside(catalog, packaged)
    if not outside:
        return
    active = {t.template_id for t in store.all_templates().values() if t.active}
    for place, template_id in outside:
        if template_id not in active:
            raise ConfigError(
                f"{place}: unknown template {template_id!r}: it is not packaged, and no Active "
                "row of the Templates database has that Template ID; add the row (or tick "
                "Active), or fix the catalog"
            )


def stored_templates_check(
    catalog: Catalog, packaged: Collection[str], store: TemplatesReader
) -> Callable[[], None] | None:
    """What to run once the store is reached; None when every template is packaged."""
    if not templates_outside(catalog, packaged):
        return None
    return lambda: check_stored_templates(catalog, packaged, store)


def check_stored_templates_waiting(
    catalog: Catalog,
    packaged: Collection[str],
    store: TemplatesReader,
    *,
    pause: Callable[[float], bool],
    wait: bool = True,
) -> None:
    """The worker's check at start: a store that cannot be read is waited out (`pause(seconds)`
    answers True when the worker is told to stop); `wait=False` (--once) raises instead."""
    backoff = Backoff(base=1, cap=60)
    attempts = 0
    while True:
        try:
            check_stored_templates(catalog, packaged, store)
            return
        except RetryableError as exc:
            if not wait:
                raise
            attempts += 1
            delay = backoff.delay(attempts)
            log.warning(
                "store_unreachable",
                reason=str(exc),
                attempts=attempts,
                retry_in=round(delay, 1),
                action="waiting to read the Templates database before sending",
            )
            if pause(delay):
                return

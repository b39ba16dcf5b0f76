"""`notion-queue migrate --from notion|sqlite --to postgres`: move up to PostgreSQL without
losing anything.

Copies every unfinished row (queued, paused, waiting: what is still to be sent) with all its
fields, the contacts and the Templates database. Each row is written with a marker
(`migrated_rows`: source, source row id) in one transaction, so a run that was interrupted
resumes where it stopped and a second run copies nothing twice. Contacts and templates are
upserts: a re-run leaves them as they are. Progress goes to stderr: a bar on a terminal, a line
every PROGRESS_EVERY rows otherwise (logs, CI).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import IO, Protocol

from notion_queue.clock import Clock
from notion_queue.models import Contact, ContactData, QueueRow, Status, Template
from notion_queue.settings import Settings, load_settings
from notion_queue.store.base import UpsertResult
from notion_queue.store.postgres import PostgresStore

UNFINISHED = frozenset({Status.QUEUED, Status.PAUSED, Status.WAITING})
PROGRESS_EVERY = 100


class SourceStore(Protocol):
    def all_rows(self) -> Iterator[QueueRow]: ...

    def all_contacts(self) -> Iterator[Contact]: ...

    def all_templates(self) -> dict[str, Template]: ...


@dataclass
class MigrationReport:
    rows_seen: int = 0  # every row in the source
    unfinished: int = 0  # of which still to be sent: these are copied
    copied: int = 0  # written by this run
    already_there: int = 0  # copied by an earlier run
    contacts: int = 0
    contacts_changed: int = 0  # created or updated by this run
    templates_changed: int = 0


class Progress:
    """A bar on a terminal, else a line every PROGRESS_EVERY rows; always on `stream`."""

    def __init__(self, stream: IO[str], total: int) -> None:
        self.stream = stream
        self.total = total
        self.tty = stream.isatty()

    def update(self, done: int) -> None:
        if self.tty:
            width = 30
            filled = width * done // max(1, self.total)
            bar = "#" * filled + "-" * (width - filled)
            end = "\n" if done == self.total else ""
            self.stream.write(f"\r  rows [{bar}] {done}/{self.total}{end}")
        elif done % PROGRESS_EVERY == 0 or done == self.total:
            self.stream.write(f"  rows {done}/{self.total}\n")
        self.stream.flush()


def migrate_queue(
    source: SourceStore,
    source_name: str,
    target: PostgresStore,
    *,
    stream: IO[str] | None = None,
) -> MigrationReport:
    """Copy `source`'s unfinished rows, contacts and templates into `target`; answers what it
    did. `source_name` names the source for the markers (e.g. notion:<database id>)."""
    report = MigrationReport()
    changed: tuple[UpsertResult, ...] = ("created", "updated")
    for template in source.all_templates().values():
        if target.upsert_template(template) in changed:
            report.templates_changed += 1
    contact_ids: dict[str, str] = {}
    for contact in source.all_contacts():
        copied, result = target.upsert_contact(_contact_data(contact))
        contact_ids[copied.email] = copied.id
        report.contacts += 1
        report.contacts_changed += result in changed
    rows = list(source.all_rows())
    report.rows_seen = len(rows)
    unfinished = [row for row in rows if row.status in UNFINISHED]
    report.unfinished = len(unfinished)
    progress = Progress(stream or sys.stderr, len(unfinished))
    for done, row in enumerate(unfinished, start=1):
        contact_id = contact_ids.get(row.email.strip().lower(), row.contact_id)
        if target.import_row(source_name, row.id, replace(row, contact_id=contact_id)):
            report.copied += 1
        else:
            report.already_there += 1
        progress.update(done)
    return report


def _contact_data(contact: Contact) -> ContactData:
    return ContactData(
        email=contact.email,
        first_name=contact.first_name,
        last_name=contact.last_name,
        business_name=contact.business_name,
        segment=contact.segment,
        assessment_score=contact.assessment_score,
        assessment_data=contact.assessment_data,
        meeting_time=contact.meeting_time,
        last_event=contact.last_event,
        unsubscribed=contact.unsubscribed,
    )


def run_migrate(source_backend: str, clock: Clock, out: Callable[[str], object] = print) -> int:
    """The command: the source's settings as for QUEUE_BACKEND=<source>, the target's as for
    QUEUE_BACKEND=postgres (DATABASE_URL), both from the same environment."""
    from notion_queue.wiring import build_store

    source_settings = load_settings(queue_backend=source_backend)
    target_settings = load_settings(queue_backend="postgres")
    source = build_store(source_settings, clock)
    try:
        target = build_store(target_settings, clock)
        assert isinstance(target, PostgresStore)
        try:
            name = _source_name(source_settings)
            out(f"Copying unfinished rows, contacts and templates from {name} to PostgreSQL")
            report = migrate_queue(source, name, target)  # type: ignore[arg-type]
        finally:
            target.close()
    finally:
        source.close()
    out(
        f"{report.copied} rows copied, {report.already_there} copied before"
        f" ({report.unfinished} unfinished of {report.rows_seen}); {report.contacts} contacts"
        f" ({report.contacts_changed} new or changed); {report.templates_changed} templates"
        " new or changed"
    )
    return 0


def _source_name(settings: Settings) -> str:
    if settings.queue_backend == "notion":
        return f"notion:{settings.notion_email_queue_db_id}"
    return f"sqlite:{settings.sqlite_path.resolve()}"

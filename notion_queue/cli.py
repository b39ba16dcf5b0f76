"""`notion-queue`: the hand work of ops and marketers, on whichever store the settings name.

notion-queue status                       counts by status and sequence, next due, failures
notion-queue pause EMAIL / resume EMAIL   hold or release an address's queued rows
                                          (resume leaves rows the system holds: waiting)
notion-queue cancel EMAIL [--sequence S]  end an address's open rows
notion-queue retry-failed [--since WHEN]  set failed rows back to queued
notion-queue enqueue SEQUENCE --email E [--var k=v ...] [--force]
notion-queue preview TEMPLATE --email E [--var k=v ...] [--html FILE]
notion-queue templates check              render every template with the seeds' payloads
notion-queue report [--since WHEN] [--html FILE]  sent, delivered, opened, … per sequence/template

Each command first says which store it read. Exit codes: 0 done, 1 the command failed,
2 a configuration error or a name or date it does not know (the message lists what it knows),
141 its output's reader went away (`notion-queue status | head -1`), quietly, as a Unix tool.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from dateutil import parser as dateparser

from notion_queue.cli_dates import ACCEPTED, parse_since
from notion_queue.clock import Clock, SystemClock
from notion_queue.enqueue_checks import enqueue_cap, enqueue_problem
from notion_queue.errors import NotionQueueError
from notion_queue.intake.payloads import normalise_email
from notion_queue.intake.plans import StartSequence, expand
from notion_queue.intake.processor import already_running
from notion_queue.logs import configure_logging
from notion_queue.models import ACTIVE_STATUSES, ContactData, QueueRow, Status
from notion_queue.private_files import private_umask
from notion_queue.quiet_pipe import quiet_when_reader_leaves
from notion_queue.render import render
from notion_queue.report import run_report
from notion_queue.settings import Settings, load_settings
from notion_queue.store.base import QueueStore, RowQueue, TemplateStore
from notion_queue.store.sqlite import SqliteStore
from notion_queue.template_check import check_templates
from notion_queue.templates import TemplateSource, load_packaged_templates
from notion_queue.timezones import contact_zone
from notion_queue.transitions import change_status
from notion_queue.wiring import build_catalog, build_store, build_unsubscribe

Out = Callable[[str], None]


class UsageError(Exception):
    """The command line names a sequence, template or moment that does not exist: exit 2."""


def describe_store(settings: Settings, *, creates: bool = False) -> str:
    """The one line every command starts with, so nobody reads an empty queue by mistake."""
    if settings.queue_backend == "notion":
        return f"Store: Notion database {settings.notion_email_queue_db_id}"
    if settings.queue_backend == "postgres":
        return "Store: PostgreSQL queue (DATABASE_URL)"  # the URL may hold a password
    path = settings.sqlite_path.resolve()
    line = f"Store: SQLite queue {path}"
    if path.exists():
        return line
    if creates:
        return f"{line} (does not exist yet: creating it)"
    return f"{line} (does not exist yet: SQLITE_PATH must name the queue file the server and worker use)"


def open_store(settings: Settings, clock: Clock, *, creates: bool) -> QueueStore:
    """A queue file that does not exist reads as empty and stays absent, unless the command
    writes rows (enqueue)."""
    if settings.queue_backend == "sqlite" and not creates and not settings.sqlite_path.exists():
        return SqliteStore(":memory:")
    return build_store(settings, clock)


def check_arguments(args: argparse.Namespace, settings: Settings, clock: Clock) -> None:
    """Names and dates are checked before any store is opened, and each refusal lists what
    is accepted."""
    sequence = getattr(args, "sequence", None)
    if sequence is not None:
        catalog = build_catalog(settings)
        if sequence not in catalog.sequences:
            raise UsageError(
                f"sequence {sequence!r} is not in the catalog; the sequences are: "
                + ", ".join(catalog.sequences)
            )
    args.since_time = None
    if getattr(args, "since", None) is not None:
        try:
            args.since_time = parse_since(args.since, clock.now())
        except ValueError:
            raise UsageError(
                f"--since {args.since!r} is not a moment it reads; use {ACCEPTED}"
            ) from None


def known_templates(store: TemplateStore) -> list[str]:
    """What preview can render: the packaged templates and the active ones in the store."""
    stored = {t.template_id for t in store.all_templates().values() if t.active}
    return sorted(stored | set(load_packaged_templates()))


def _parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    variables = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--var {pair!r} must look like name=value")
        variables[key.strip()] = value
    return variables


def _progress(out: Out, index: int, total: int, what: str) -> None:
    if total > 10 and (index % 10 == 0 or index == total):
        out(f"  {index}/{total} {what}")


# What `status` reads row by row: the rows still to act on. The history (sent, cancelled,
# skipped) is only counted where the store counts it without reading it (SQLite).
UNFINISHED = (Status.QUEUED, Status.REVIEW, Status.PAUSED, Status.WAITING, Status.FAILED)
NOT_COUNTED = (
    "Finished rows (sent, cancelled, skipped) are not counted on Notion (it would read every "
    "row): see the Email Queue's Sent view."
)


def cmd_status(store: RowQueue, clock: Clock, out: Out, args: argparse.Namespace) -> int:
    rows = list(store.rows_with_status(UNFINISHED))
    counted = store.status_counts()
    complete = counted is not None  # else (Notion) the unfinished rows are all it counts
    if counted is None:
        counted = dict(Counter((r.sequence, r.status_text) for r in rows))
    if not counted:
        out("The queue is empty.")
        if not complete:
            out(NOT_COUNTED)
        return 0
    statuses = [s.value for s in (Status if complete else UNFINISHED)]
    by_status: Counter[str] = Counter()
    by_sequence: dict[str, Counter[str]] = {}
    for (sequence, status), n in counted.items():
        by_status[status or "(empty)"] += n
        by_sequence.setdefault(sequence or "(none)", Counter())[status] += n
    what = "rows" if complete else "unfinished rows"
    shown = ", ".join(f"{by_status[s]} {s}" for s in statuses if by_status[s])
    out(f"{sum(counted.values())} {what}: {shown or 'none'}")
    out("")
    out(f"{'sequence':<18}" + "".join(f"{s:>11}" for s in statuses))
    for sequence, counts in sorted(by_sequence.items()):
        out(f"{sequence:<18}" + "".join(f"{counts[s]:>11}" for s in statuses))
    if not complete:
        out(NOT_COUNTED)
    now = clock.now()
    queued = sorted(
        (r for r in rows if r.status is Status.QUEUED and r.scheduled_time),
        key=lambda r: r.scheduled_time or now,
    )
    out("")
    if queued:
        nxt = queued[0]
        assert nxt.scheduled_time is not None
        when = "due now" if nxt.scheduled_time <= now else f"in {_ago(nxt.scheduled_time - now)}"
        out(
            f"Next due: {nxt.template_id} → {nxt.email} at "
            f"{nxt.scheduled_time:%Y-%m-%d %H:%M:%S} UTC ({when})"
        )
    else:
        out("Nothing queued.")
    review = sum(1 for r in rows if r.status is Status.REVIEW)
    if review:
        out("")
        out(
            f"Needs review: {review} row(s); set Status to queued to approve one "
            "(cancelled to drop it)"
        )
    failed = [r for r in rows if r.status is Status.FAILED]
    if failed:
        out("")
        out(f"Failed rows ({len(failed)}): fix each, then `notion-queue retry-failed`")
        for row in failed[-20:]:
            out(f"  {row.template_id} → {row.email}: {row.error_message}")
    return 0


def _ago(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _set_status(
    store: RowQueue,
    out: Out,
    email: str,
    rows: list[QueueRow],
    new: Status,
    verb: str,
    *,
    error_message: str | None = None,
) -> int:
    if not rows:
        out(f"No rows to {verb} for {email}.")
        return 0
    changed = 0
    for index, row in enumerate(rows, start=1):
        if change_status(store, row, new, error_message=error_message) is not None:
            changed += 1
        _progress(out, index, len(rows), verb)
    done = {"pause": "Paused", "resume": "Resumed", "cancel": "Cancelled"}[verb]
    out(f"{done} {changed} row(s) for {email}.")
    return 0


def cmd_pause(store: RowQueue, clock: Clock, out: Out, args: argparse.Namespace) -> int:
    email = normalise_email(args.email)
    rows = store.rows_for_email(email, statuses={Status.QUEUED})
    return _set_status(store, out, email, rows, Status.PAUSED, "pause")


def cmd_resume(store: RowQueue, clock: Clock, out: Out, args: argparse.Namespace) -> int:
    """Releases a marketer's pause only: a row the system holds (`waiting`) stays held."""
    email = normalise_email(args.email)
    rows = store.rows_for_email(email, statuses={Status.PAUSED})
    return _set_status(store, out, email, rows, Status.QUEUED, "resume")


def cmd_cancel(store: RowQueue, clock: Clock, out: Out, args: argparse.Namespace) -> int:
    email = normalise_email(args.email)
    rows = store.rows_for_email(email, sequence=args.sequence, statuses=ACTIVE_STATUSES)
    note = "cancelled: by notion-queue cancel"
    return _set_status(store, out, email, rows, Status.CANCELLED, "cancel", error_message=note)


def cmd_retry_failed(store: RowQueue, clock: Clock, out: Out, args: argparse.Namespace) -> int:
    since: datetime | None = args.since_time
    rows = [
        r
        for r in store.all_rows()
        if r.status is Status.FAILED
        and (since is None or (r.scheduled_time is not None and r.scheduled_time >= since))
    ]
    if not rows:
        out("No failed rows to retry.")
        return 0
    requeued = 0
    for index, row in enumerate(rows, start=1):
        if change_status(store, row, Status.QUEUED, attempts=0, error_message="") is not None:
            requeued += 1
        _progress(out, index, len(rows), "requeued")
    out(f"Requeued {requeued} failed row(s); the worker sends them at its next poll.")
    return 0


def cmd_enqueue(
    store: QueueStore, clock: Clock, out: Out, args: argparse.Namespace, settings: Settings
) -> int:
    catalog = build_catalog(settings)
    email = normalise_email(args.email)
    variables = _parse_vars(args.var)
    problem = enqueue_problem(catalog, store, args.sequence, variables)
    if problem:
        raise UsageError(problem)
    now = clock.now()
    anchor = dateparser.isoparse(args.at) if args.at else now
    if anchor.tzinfo is None:
        raise ValueError("--at needs a timezone, e.g. 2025-12-03T14:00:00Z")
    existing = store.rows_for_email(email)
    if not args.force and already_running(catalog, existing, args.sequence):
        raise NotionQueueError(
            f"{args.sequence} is already running for {email}, so nothing was enqueued "
            "(a webhook would not start it again either); add --force to start a second run"
        )
    first_name = variables.get("first_name", "")
    contact, _ = store.upsert_contact(
        ContactData(
            email=email,
            first_name=first_name or None,
            last_event=f"cli:{args.sequence}",
            time_zone=variables.get("timezone") or None,  # checked by enqueue_problem
        )
    )
    zone = contact_zone(contact.time_zone, email) or settings.default_zone
    rows = expand(
        StartSequence(args.sequence, anchor, first_name=first_name, variables=variables),
        email=email,
        catalog=catalog,
        event_key=f"cli:{secrets.token_hex(10)}",
        now=now,
        testing_mode=settings.testing_mode,
        contact_id=contact.id,
        zone=zone,
        cap=enqueue_cap(settings, zone, existing, catalog),
    )
    for row in rows:
        store.add_row(row)
        out(f"  {row.template_id} at {row.scheduled_time:%Y-%m-%d %H:%M:%S} UTC ({row.status})")
    out(f"Enqueued {len(rows)} row(s) of {args.sequence} for {email}.")
    return 0


def cmd_preview(
    store: TemplateStore, clock: Clock, out: Out, args: argparse.Namespace, settings: Settings
) -> int:
    catalog = build_catalog(settings)
    email = normalise_email(args.email)
    known = known_templates(store)
    if args.template not in known:
        raise UsageError(
            f"template {args.template!r} does not exist; the templates are: " + ", ".join(known)
        )
    source = TemplateSource(store, clock, cache_seconds=0)
    template = source.get(args.template)
    variables: dict[str, Any] = {**catalog.variables, **_parse_vars(args.var), "email": email}
    variables["unsubscribe_url"] = build_unsubscribe(settings).url(settings.public_base_url, email)
    rendered = render(template, variables)
    out(f"Subject: {rendered.subject}")
    out(f"To: {email}")
    out("")
    out(rendered.text)
    if args.html:
        Path(args.html).write_text(rendered.html, encoding="utf-8")
        out(f"HTML written to {args.html} (open it in a browser).")
    return 0


def cmd_report(store: Any, clock: Clock, out: Out, args: argparse.Namespace) -> int:
    return run_report(store, out, args.since_time, args.html)


def cmd_templates_check(store: QueueStore, clock: Clock, out: Out, settings: Settings) -> int:
    """As the worker would send them, through the worker's own TemplateSource: an Active row of
    the store's Templates (its page body when its HTML Body is empty), else the packaged
    document (so a sequence whose template is only in Templates is checked too)."""
    catalog = build_catalog(settings)
    results = check_templates(catalog, TemplateSource(store, clock))
    problems = [r for r in results if r.problem]
    for result in results:
        mark = "ok  " if result.problem is None else "FAIL"
        detail = result.rendered.subject if result.rendered else result.problem
        out(f"{mark} {result.template_id:<28} {detail}")
    out(
        f"{len(results) - len(problems)} of {len(results)} templates render with the seeds' payloads."
    )
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notion-queue", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="counts by status and sequence, next due, failed rows")
    for name, help_text in (("pause", "hold an address's queued rows"), ("resume", "release them")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("email")
    p = sub.add_parser("cancel", help="end an address's open rows")
    p.add_argument("email")
    p.add_argument("--sequence")
    p = sub.add_parser("retry-failed", help="set failed rows back to queued")
    p.add_argument(
        "--since",
        metavar="WHEN",
        help="only rows scheduled on or after this moment: today, yesterday, 3d, 12h (ago), "
        "or an ISO date or time such as 2025-12-01 (without a zone: UTC)",
    )
    p = sub.add_parser("enqueue", help="start a sequence for an address by hand")
    p.add_argument("sequence")
    p.add_argument("--email", required=True)
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--at", help="the anchor time (default now; a meeting's start for precall_prep)")
    p.add_argument(
        "--force",
        action="store_true",
        help="start the sequence even if it is already running for the address",
    )
    p = sub.add_parser("preview", help="render a template for an address")
    p.add_argument("template")
    p.add_argument("--email", required=True)
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--html", help="also write the HTML part to this file")
    p = sub.add_parser("report", help="how each email performs, per sequence and template")
    p.add_argument("--since", metavar="WHEN", help="only emails sent on or after it (as above)")
    p.add_argument("--html", metavar="FILE", help="also write a page with a funnel per sequence")
    p = sub.add_parser(
        "migrate",
        help="copy the unfinished rows, contacts and templates to PostgreSQL (resumable)",
    )
    p.add_argument("--from", dest="source", choices=("notion", "sqlite"), required=True)
    p.add_argument("--to", dest="target", choices=("postgres",), required=True)
    templates = sub.add_parser("templates", help="template tools")
    tsub = templates.add_subparsers(dest="templates_command", required=True)
    tsub.add_parser("check", help="render every template with the seeds' sample payloads")
    return parser


@quiet_when_reader_leaves
def main(argv: Sequence[str] | None = None, *, out: Out = print, clock: Clock | None = None) -> int:
    private_umask()
    args = build_parser().parse_args(argv)
    clock = clock or SystemClock()
    try:
        settings = load_settings()
        configure_logging(settings.log_format, "warning", settings.secrets())
        if args.command == "migrate":
            from notion_queue.migrate import run_migrate

            return run_migrate(args.source, clock, out)
        check_arguments(args, settings, clock)
        creates = args.command == "enqueue"
        store_line = describe_store(settings, creates=creates)
        store = open_store(settings, clock, creates=creates)
    except (NotionQueueError, UsageError) as exc:
        print(f"notion-queue: {exc}", file=sys.stderr)
        return 2
    out(store_line)
    commands: dict[str, Callable[..., int]] = {
        "status": cmd_status,
        "pause": cmd_pause,
        "resume": cmd_resume,
        "cancel": cmd_cancel,
        "retry-failed": cmd_retry_failed,
        "report": cmd_report,
    }
    try:
        if args.command in commands:
            return commands[args.command](store, clock, out, args)
        if args.command == "enqueue":
            return cmd_enqueue(store, clock, out, args, settings)
        if args.command == "templates":
            return cmd_templates_check(store, clock, out, settings)
        return cmd_preview(store, clock, out, args, settings)
    except UsageError as exc:
        print(f"notion-queue: {exc}", file=sys.stderr)
        return 2
    except (NotionQueueError, ValueError) as exc:
        print(f"notion-queue: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


if __name__ == "__main__":
    raise SystemExit(main())

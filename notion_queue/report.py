"""How each email performs: `notion-queue report`, per sequence and per template, from the sent
rows' Delivery column (Resend's webhooks fill it) and the Unsubscribed contacts.

Counting rules (a row's Delivery keeps only its furthest state, `models.DELIVERY_RANK`):
- sent: rows with Status sent (Sent At in the period);
- delivered: Delivery delivered, opened, clicked or complained (a complaint comes from an inbox);
- opened: opened or clicked (a click implies an open); clicked: clicked;
- bounced, complained: those states;
- unsubscribed: an address ticked Unsubscribed that neither bounced nor complained, counted once,
  on the last email it was sent in the period (the one it most likely unsubscribed from).

Reading: only the sent rows of the period (Notion: Status = sent and Sent At on or after
--since, 100 rows per request) plus one Contacts query for the unsubscribed addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Protocol

from notion_queue.models import Delivery, QueueRow

Out = Callable[[str], None]

DELIVERED = frozenset({Delivery.DELIVERED, Delivery.OPENED, Delivery.CLICKED, Delivery.COMPLAINED})
OPENED = frozenset({Delivery.OPENED, Delivery.CLICKED})
COUNTS = ("sent", "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed")
# rate name → (numerator, denominator)
RATES = {
    "delivery rate": ("delivered", "sent"),
    "open rate": ("opened", "delivered"),
    "click rate": ("clicked", "delivered"),
    "bounce rate": ("bounced", "sent"),
    "complaint rate": ("complained", "delivered"),
    "unsubscribe rate": ("unsubscribed", "delivered"),
}
PROGRESS_EVERY = 100  # rows: one Notion page


class SentRowSource(Protocol):
    """What the report reads: the sent rows of a period and who unsubscribed."""

    def sent_rows(self, since: datetime | None = None) -> Iterator[QueueRow]:
        """Rows with Status sent and Sent At on or after `since` (every sent row when None),
        in Sent At order."""
        ...

    def unsubscribed_emails(self) -> set[str]: ...


@dataclass
class Tally:
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    bounced: int = 0
    complained: int = 0
    unsubscribed: int = 0

    def add(self, delivery: Delivery | None, unsubscribed: bool) -> None:
        self.sent += 1
        self.delivered += delivery in DELIVERED
        self.opened += delivery in OPENED
        self.clicked += delivery is Delivery.CLICKED
        self.bounced += delivery is Delivery.BOUNCED
        self.complained += delivery is Delivery.COMPLAINED
        self.unsubscribed += unsubscribed

    def count(self, name: str) -> int:
        value: int = getattr(self, name)
        return value

    def rate(self, name: str) -> float | None:
        numerator, denominator = RATES[name]
        below = self.count(denominator)
        return self.count(numerator) / below if below else None


@dataclass
class Report:
    since: datetime | None
    rows_read: int = 0
    by_sequence: dict[str, Tally] = field(default_factory=dict)
    by_template: dict[str, Tally] = field(default_factory=dict)
    # sequence → email number → (template id, sent)
    steps: dict[str, dict[int, tuple[str, int]]] = field(default_factory=dict)
    total: Tally = field(default_factory=Tally)

    def funnel(self, sequence: str) -> list[tuple[int, str, int]]:
        """(email number, template, sent) per step of `sequence`, in step order."""
        steps = self.steps.get(sequence, {})
        return [(number, *steps[number]) for number in sorted(steps)]


def _delivery(row: QueueRow) -> Delivery | None:
    try:
        return Delivery(row.delivery.strip().lower())
    except ValueError:
        return None


def build_report(
    source: SentRowSource, since: datetime | None, progress: Out | None = None
) -> Report:
    report = Report(since=since)
    rows: list[QueueRow] = []
    for row in source.sent_rows(since):
        rows.append(row)
        if progress is not None and len(rows) % PROGRESS_EVERY == 0:
            progress(f"  read {len(rows)} sent rows…")
    report.rows_read = len(rows)
    suppressed = {email.strip().lower() for email in source.unsubscribed_emails()}
    bounced_or_complained = {
        row.email.lower()
        for row in rows
        if _delivery(row) in (Delivery.BOUNCED, Delivery.COMPLAINED)
    }
    last_email: dict[str, str] = {}  # address → id of the last row sent to it in the period
    for row in rows:
        last_email[row.email.lower()] = row.id
    unsubscribed_rows = {
        row_id
        for email, row_id in last_email.items()
        if email in suppressed and email not in bounced_or_complained
    }
    for row in rows:
        delivery = _delivery(row)
        unsubscribed = row.id in unsubscribed_rows
        sequence = row.sequence or "(none)"
        for tally in (
            report.by_sequence.setdefault(sequence, Tally()),
            report.by_template.setdefault(row.template_id or "(none)", Tally()),
            report.total,
        ):
            tally.add(delivery, unsubscribed)
        if row.email_number is not None:
            steps = report.steps.setdefault(sequence, {})
            template, sent = steps.get(row.email_number, (row.template_id, 0))
            steps[row.email_number] = (template, sent + 1)
    return report


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _table(title: str, tallies: dict[str, Tally]) -> Iterable[str]:
    yield f"{title:<30}" + "".join(f"{name:>13}" for name in COUNTS)
    for name, tally in sorted(tallies.items()):
        yield f"{name:<30}" + "".join(f"{tally.count(c):>13}" for c in COUNTS)
        yield f"{'':<30}" + "  ".join(
            f"{label.split()[0]} {_percent(tally.rate(label))}" for label in RATES
        )


def print_report(report: Report, out: Out) -> None:
    period = f"since {report.since:%Y-%m-%d %H:%M} UTC" if report.since else "all time"
    out(f"Report ({period}): {report.total.sent} emails sent.")
    if not report.total.sent:
        return
    out("")
    for line in _table("sequence", report.by_sequence):
        out(line)
    out("")
    for line in _table("template", report.by_template):
        out(line)
    out("")
    out("Funnel (emails sent per step; % of step 1, and of the step before):")
    for sequence in sorted(report.steps):
        out(f"  {sequence}")
        steps = report.funnel(sequence)
        first = steps[0][2]
        previous = first
        for number, template, sent in steps:
            out(
                f"    {number}. {template:<30}{sent:>7}"
                f"{_percent(sent / first if first else None):>9}"
                f"{_percent(sent / previous if previous else None):>9}"
            )
            previous = sent


BAR_WIDTH = 400
BAR_HEIGHT = 26


def funnel_svg(steps: list[tuple[int, str, int]]) -> str:
    """A horizontal bar per step, its width the share of step 1: inline SVG, no script."""
    first = steps[0][2] if steps else 0
    height = BAR_HEIGHT * len(steps) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{BAR_WIDTH + 320}" height="{height}" '
        f'role="img" aria-label="funnel">'
    ]
    for index, (number, template, sent) in enumerate(steps):
        width = round(BAR_WIDTH * sent / first) if first else 0
        y = index * BAR_HEIGHT + 5
        share = _percent(sent / first if first else None)
        parts.append(
            f'<rect x="0" y="{y}" width="{width}" height="{BAR_HEIGHT - 6}" fill="#4f6bed">'
            f"<title>{escape(template)}: {sent}</title></rect>"
            f'<text x="{width + 8}" y="{y + 15}" font-size="13">'
            f"{number}. {escape(template)} — {sent} ({share})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _html_table(title: str, tallies: dict[str, Tally]) -> str:
    head = "".join(f"<th>{c}</th>" for c in (title, *COUNTS, *RATES))
    body = "".join(
        "<tr><td>"
        + escape(name)
        + "</td>"
        + "".join(f"<td>{tally.count(c)}</td>" for c in COUNTS)
        + "".join(f"<td>{_percent(tally.rate(r))}</td>" for r in RATES)
        + "</tr>"
        for name, tally in sorted(tallies.items())
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def report_html(report: Report) -> str:
    """A standalone page: no network, no JavaScript."""
    period = f"since {report.since:%Y-%m-%d %H:%M} UTC" if report.since else "all time"
    funnels = "".join(
        f"<h3>{escape(sequence)}</h3>{funnel_svg(report.funnel(sequence))}"
        for sequence in sorted(report.steps)
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        "<title>notion-queue report</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em}"
        "table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}</style></head><body>"
        f"<h1>How each email performs ({escape(period)})</h1>"
        f"<p>{report.total.sent} emails sent.</p>"
        f"<h2>Per sequence</h2>{_html_table('sequence', report.by_sequence)}"
        f"<h2>Per template</h2>{_html_table('template', report.by_template)}"
        f"<h2>Funnels (emails sent per step)</h2>{funnels}"
        "</body></html>"
    )


def run_report(
    source: SentRowSource, out: Out, since: datetime | None, html_file: str | None
) -> int:
    """`notion-queue report`: print it, optionally write the HTML page, and say what it cost."""
    gateway = getattr(source, "gateway", None)
    before = gateway.stats.total if gateway is not None else 0
    report = build_report(source, since, progress=out)
    print_report(report, out)
    if html_file:
        with open(html_file, "w", encoding="utf-8") as page:
            page.write(report_html(report))
        out(f"HTML report written to {html_file} (open it in a browser).")
    if gateway is not None:
        cost = gateway.stats.total - before
        out(f"Read {report.rows_read} sent rows in {cost} Notion requests.")
    return 0

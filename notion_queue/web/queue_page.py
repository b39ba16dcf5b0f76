"""GET /queue: the Email Queue in a browser, for stores a marketer cannot open in Notion (and
for Notion too: it only asks the RowQueue and TemplateStore roles).

Lists rows, filtered by status, sequence and address, a page at a time; shows a row with its
email rendered as the worker would send it (in a sandboxed iframe: no scripts, no same-origin);
pauses, resumes, cancels and retries a row with POST forms carrying a CSRF token. Every change
goes through transitions.change_status. Mounted only when ADMIN_TOKEN is set (else /queue is a
404); see queue_auth.py for how a person or a script signs in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import escape
from itertools import islice
from typing import Protocol
from urllib.parse import urlencode

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from notion_queue.addresses import canonical_email
from notion_queue.clock import Clock
from notion_queue.compose import Composer
from notion_queue.errors import PermanentError
from notion_queue.logs import get_logger
from notion_queue.models import QueueRow, Status, utc_text
from notion_queue.production import is_production
from notion_queue.sequences import Catalog
from notion_queue.settings import Settings
from notion_queue.store.base import RowNotFound, RowQueue, TemplateStore
from notion_queue.templates import TemplateSource
from notion_queue.transitions import change_status
from notion_queue.unsubscribe import UnsubscribeTokens
from notion_queue.web.queue_auth import AdminAuth, read_form

log = get_logger("notion_queue.server")

PAGE_SIZE = 50
MAX_PAGE = 10_000
_ROW_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_SEQUENCE = re.compile(r"[A-Za-z0-9_.-]{1,100}")

HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # The rendered email (srcdoc) inherits this: its images load, nothing else does.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

STYLE = """<style>body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;
padding:0 1rem;color:#222}table{border-collapse:collapse;width:100%}td,th{text-align:left;
padding:.35rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}form.inline{display:inline}
iframe{width:100%;height:32rem;border:1px solid #ccc}pre{white-space:pre-wrap;background:#f6f6f6;
padding:1rem}.note{background:#fff6d6;padding:.5rem 1rem}label{margin-right:1rem}</style>"""


class QueuePageStore(RowQueue, TemplateStore, Protocol):
    """What the page asks of the store: the rows, and the templates to render one."""


@dataclass(frozen=True)
class Action:
    new: Status
    allowed_from: frozenset[Status]
    note: str | None = None  # the Error Message it writes
    reset_attempts: bool = False


ACTIONS = {
    "pause": Action(Status.PAUSED, frozenset({Status.QUEUED})),
    # A marketer's pause only: a row the system holds (waiting) stays held, as in the CLI.
    "resume": Action(Status.QUEUED, frozenset({Status.PAUSED})),
    # A row of a `review = true` sequence waits for a marketer's approval (queued) or cancel.
    "approve": Action(Status.QUEUED, frozenset({Status.REVIEW})),
    "cancel": Action(
        Status.CANCELLED,
        frozenset({Status.QUEUED, Status.REVIEW, Status.PAUSED, Status.WAITING, Status.FAILED}),
        note="cancelled: from the queue page",
    ),
    "retry": Action(Status.QUEUED, frozenset({Status.FAILED}), note="", reset_attempts=True),
}


@dataclass(frozen=True)
class Filters:
    status: Status | None = None
    sequence: str | None = None
    email: str | None = None
    page: int = 1

    def query(self, page: int | None = None) -> str:
        number = page or self.page
        values = {
            "status": self.status.value if self.status else "",
            "sequence": self.sequence or "",
            "email": self.email or "",
            "page": str(number) if number > 1 else "",
        }
        return urlencode({k: v for k, v in values.items() if v})


class BadFilter(ValueError):
    pass


def parse_filters(params: dict[str, str]) -> Filters:
    """The list's filters from the query string; BadFilter saying which one is wrong."""
    status_text = params.get("status", "").strip()
    sequence = params.get("sequence", "").strip() or None
    email_text = params.get("email", "").strip()
    page_text = params.get("page", "1").strip() or "1"
    try:
        status = Status(status_text) if status_text else None
    except ValueError:
        raise BadFilter("status: not a status") from None
    if sequence is not None and _SEQUENCE.fullmatch(sequence) is None:
        raise BadFilter("sequence: letters, digits, _ . - only")
    try:
        email = canonical_email(email_text) if email_text else None
    except ValueError as exc:
        raise BadFilter(f"address: {exc}") from None
    if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
        raise BadFilter(f"page: a number from 1 to {MAX_PAGE}")
    return Filters(status, sequence, email, int(page_text))


def matching_rows(store: RowQueue, filters: Filters) -> Iterator[QueueRow]:
    if filters.email is not None:
        statuses = {filters.status} if filters.status else None
        rows: Iterator[QueueRow] = iter(
            store.rows_for_email(filters.email, sequence=filters.sequence, statuses=statuses)
        )
    else:
        rows = store.all_rows()
    for row in rows:
        if filters.status is not None and row.status is not filters.status:
            continue
        if filters.sequence is not None and row.sequence != filters.sequence:
            continue
        yield row


def page_of(store: RowQueue, filters: Filters) -> tuple[list[QueueRow], bool]:
    """This page's rows, and whether another page follows."""
    start = (filters.page - 1) * PAGE_SIZE
    rows = list(islice(matching_rows(store, filters), start, start + PAGE_SIZE + 1))
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def html_page(title: str, body: str, status: int = 200, csrf: str | None = None) -> HTMLResponse:
    """A page; with `csrf` (signed in) it has a Sign out button."""
    sign_out = (
        '<form class="inline" method="post" action="/queue/logout">'
        f'<input type="hidden" name="csrf" value="{csrf}"><button>Sign out</button></form>'
        if csrf
        else ""
    )
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f"</title>{STYLE}</head><body><h1>{escape(title)}</h1>{sign_out}{body}</body></html>",
        status_code=status,
        headers=HEADERS,
    )


def queue_page_routes(
    settings: Settings,
    store: QueuePageStore | None,
    clock: Clock,
    *,
    catalog: Catalog,
    unsubscribe: UnsubscribeTokens | None,
) -> list[Route]:
    """The page's routes when ADMIN_TOKEN is set and the server has a store; else none (404)."""
    if settings.admin_token is None or store is None:
        return []
    auth = AdminAuth(settings.admin_token.get_secret_value(), secure_cookie=is_production(settings))
    composer = Composer(
        sender=settings.email_from,
        reply_to=settings.email_reply_to,
        public_base_url=settings.public_base_url,
        campaign_variables=catalog.variables,
        event_fields=catalog.fields,
        default_zone=settings.default_zone,
        unsubscribe=unsubscribe,
    )
    return queue_routes(auth, store, composer, clock)


def queue_routes(
    auth: AdminAuth, store: QueuePageStore, composer: Composer, clock: Clock
) -> list[Route]:
    templates = TemplateSource(store, clock, cache_seconds=30)

    def page(title: str, body: str, status: int = 200) -> HTMLResponse:
        return html_page(title, body, status, csrf=auth.csrf)

    def login_form(status: int = 401, problem: str = "") -> HTMLResponse:
        note = f'<p class="note">{escape(problem)}</p>' if problem else ""
        return html_page(
            "Sign in",
            f"{note}<form method=post action=/queue/login><label>Admin token "
            '<input type="password" name="token" autocomplete="current-password" autofocus>'
            "</label><button>Sign in</button></form>",
            status,
        )

    def buttons(row: QueueRow, back: str) -> str:
        forms = []
        for name, action in ACTIONS.items():
            if row.status in action.allowed_from:
                forms.append(
                    f'<form class="inline" method="post" action="/queue/rows/{escape(row.id)}/'
                    f'{name}"><input type="hidden" name="csrf" value="{auth.csrf}">'
                    f'<input type="hidden" name="back" value="{escape(back)}">'
                    f'<button name="do" value="{name}">{name.capitalize()}</button></form>'
                )
        return " ".join(forms)

    async def index(request: Request) -> Response:
        if auth.signed_in(request) is None:
            return login_form()
        try:
            filters = parse_filters(dict(request.query_params))
        except BadFilter as exc:
            return page("Email Queue", f'<p class="note">Bad filter: {escape(str(exc))}</p>', 400)
        rows, more = await anyio.to_thread.run_sync(page_of, store, filters)
        back = "/queue" + (f"?{filters.query()}" if filters.query() else "")
        options = "".join(
            f'<option value="{s.value}"{" selected" if s is filters.status else ""}>{s.value}'
            "</option>"
            for s in Status
        )
        form = (
            '<form method="get" action="/queue"><label>Status <select name="status">'
            f'<option value="">any</option>{options}</select></label>'
            f'<label>Sequence <input name="sequence" value="{escape(filters.sequence or "")}">'
            f'</label><label>Address <input name="email" value="{escape(filters.email or "")}">'
            "</label><button>Filter</button></form>"
        )
        lines = "".join(
            f"<tr><td>{escape(_when(row))}</td><td>{escape(row.email)}</td>"
            f"<td>{escape(row.sequence)}</td>"
            f'<td><a href="/queue/rows/{escape(row.id)}">{escape(row.template_id)}</a></td>'
            f'<td class="status">{escape(row.status_text)}</td>'
            f"<td>{escape(row.error_message)}</td><td>{buttons(row, back)}</td></tr>"
            for row in rows
        )
        table = (
            "<table><tr><th>Scheduled</th><th>Address</th><th>Sequence</th><th>Template</th>"
            f"<th>Status</th><th>Note</th><th></th></tr>{lines}</table>"
            if rows
            else "<p>No rows match.</p>"
        )
        nav = []
        if filters.page > 1:
            nav.append(f'<a href="/queue?{filters.query(filters.page - 1)}">← Previous</a>')
        if more:
            nav.append(f'<a href="/queue?{filters.query(filters.page + 1)}">Next →</a>')
        return page("Email Queue", form + table + f"<p>{' · '.join(nav)}</p>")

    async def show(request: Request) -> Response:
        if auth.signed_in(request) is None:
            return login_form()
        row_id = request.path_params["row_id"]
        if _ROW_ID.fullmatch(row_id) is None:
            return page("No such row", "", 404)
        try:
            row = await anyio.to_thread.run_sync(store.get_row, row_id)
        except RowNotFound:
            return page("No such row", "<p><a href=/queue>← Queue</a></p>", 404)
        fields = (
            ("Address", row.email),
            ("First name", row.first_name),
            ("Sequence", row.sequence),
            ("Template", row.template_id),
            ("Scheduled", _when(row)),
            ("Status", row.status_text),
            ("Attempts", str(row.attempts)),
            ("Sent at", row.sent_at.isoformat() if row.sent_at else ""),
            ("Resend Email ID", row.resend_email_id),
            ("Note", row.error_message),
        )
        table = "".join(f"<tr><th>{k}</th><td>{escape(v)}</td></tr>" for k, v in fields)
        try:
            email = await anyio.to_thread.run_sync(
                lambda: composer.compose(row, templates.get(row.template_id))
            )
        except (PermanentError, ValueError) as exc:
            rendered = f'<p class="note">This row cannot be rendered: {escape(str(exc))}</p>'
        else:
            rendered = (
                f"<h2>Subject: {escape(email.subject)}</h2>"
                f'<iframe sandbox="" title="The email" srcdoc="{escape(email.html, quote=True)}">'
                f"</iframe><h2>Plain text</h2><pre>{escape(email.text)}</pre>"
            )
        return page(
            f"{row.template_id} → {row.email}",
            f'<p><a href="/queue">← Queue</a></p><table>{table}</table>'
            f"<p>{buttons(row, f'/queue/rows/{row.id}')}</p>{rendered}",
        )

    async def act(request: Request) -> Response:
        signed = auth.signed_in(request)
        if signed is None:
            return login_form()
        form = await read_form(request)
        if form is None and signed == "bearer":
            form = {}  # a script's POST needs no form
        if form is None or not auth.csrf_ok(signed, form):
            return page("Refused", "<p>This form is out of date: reload the page.</p>", 403)
        row_id, name = request.path_params["row_id"], request.path_params["action"]
        action = ACTIONS.get(name)
        if action is None or _ROW_ID.fullmatch(row_id) is None:
            return page("No such action", "", 404)
        try:
            row = await anyio.to_thread.run_sync(store.get_row, row_id)
        except RowNotFound:
            return page("No such row", "<p><a href=/queue>← Queue</a></p>", 404)
        back = _safe_back(form.get("back", ""))
        if row.status not in action.allowed_from:
            return page(
                "Nothing changed",
                f"<p>This row is {escape(row.status_text)} now, so it cannot be {name}d.</p>"
                f'<p><a href="{escape(back)}">← Back</a></p>',
                409,
            )
        changed = await anyio.to_thread.run_sync(
            lambda: change_status(
                store,
                row,
                action.new,
                error_message=action.note,
                attempts=0 if action.reset_attempts else None,
            )
        )
        if changed is None:
            return page("Nothing changed", f'<p><a href="{escape(back)}">← Back</a></p>', 409)
        log.info("queue_page_action", action=name, row_id=row.id, sequence=row.sequence)
        return RedirectResponse(back, status_code=303, headers=HEADERS)

    async def login(request: Request) -> Response:
        form = await read_form(request)
        if form is None or not auth.token_matches(form.get("token", "")):
            host = request.client.host if request.client else ""
            log.warning("queue_page_sign_in_refused", client=host)
            return login_form(401, "That is not the admin token.")
        response = RedirectResponse("/queue", status_code=303, headers=HEADERS)
        auth.set_session(response)
        return response

    async def logout(request: Request) -> Response:
        signed = auth.signed_in(request)
        form = await read_form(request) or {}
        if signed is not None and not auth.csrf_ok(signed, form):
            return page("Refused", "<p>This form is out of date: reload the page.</p>", 403)
        response = RedirectResponse("/queue", status_code=303, headers=HEADERS)
        auth.clear_session(response)
        return response

    return [
        Route("/queue", index, methods=["GET"]),
        Route("/queue/login", login, methods=["POST"]),
        Route("/queue/logout", logout, methods=["POST"]),
        Route("/queue/rows/{row_id}", show, methods=["GET"]),
        Route("/queue/rows/{row_id}/{action}", act, methods=["POST"]),
    ]


def _when(row: QueueRow) -> str:
    return utc_text(row.scheduled_time) if row.scheduled_time else ""


def _safe_back(value: str) -> str:
    """Where to go after an action: a page of the queue, never another site."""
    if (
        value.startswith("/queue")
        and value.isprintable()
        and "//" not in value
        and "\\" not in value
        and len(value) <= 500
    ):
        return value
    return "/queue"

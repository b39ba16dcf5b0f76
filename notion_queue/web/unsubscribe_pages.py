"""The unsubscribe page and the RFC 8058 one-click endpoint.

GET shows a page with a confirm button and changes nothing (link scanners fetch every URL in an
email). POST, from that button or from the mailbox's one-click, journals the unsubscribe (it
must never be lost) and answers 200 with no redirect, as RFC 8058 requires.
"""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from notion_queue.clock import Clock
from notion_queue.intake.drainer import IntakeDrainer
from notion_queue.intake.journal import Journal
from notion_queue.intake.journaling import RETRY_AFTER_SECONDS, journal_event
from notion_queue.logs import get_logger
from notion_queue.unsubscribe import UnsubscribeTokens

log = get_logger("notion_queue.server")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;
color:#222}}button{{font-size:1rem;padding:.6rem 1.2rem;border:0;border-radius:6px;
background:#222;color:#fff;cursor:pointer}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title=escape(title), body=body), status_code=status)


def invalid_link() -> HTMLResponse:
    return page(
        "This link is not valid",
        "<p>The unsubscribe link is incomplete or was changed. Use the link from the most "
        "recent email, or reply to it and ask us to remove you.</p>",
        status=400,
    )


def unsubscribe_routes(
    tokens: UnsubscribeTokens,
    journal: Journal,
    drainer: IntakeDrainer | None,
    clock: Clock,
) -> list[Route]:
    async def show(request: Request) -> Response:
        token = request.query_params.get("token", "")
        email = tokens.email_for(token)
        if email is None:
            return invalid_link()
        return page(
            "Unsubscribe",
            f"<p>Stop all emails to <strong>{escape(email)}</strong>?</p>"
            f'<form method="post" action="/unsubscribe?token={escape(token, quote=True)}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit" id="confirm">Unsubscribe</button></form>',
        )

    async def confirm(request: Request) -> Response:
        # The token is in the URL; the body (List-Unsubscribe=One-Click) carries nothing else.
        email = tokens.email_for(request.query_params.get("token", ""))
        if email is None:
            return invalid_link()
        now = clock.now()
        journaled = await journal_event(
            journal,
            "unsubscribe",
            f"unsubscribe:link:{email}:{now:%Y%m%d%H}",
            {"email": email, "source": "link"},
            now,
        )
        if journaled is None:
            response = page(
                "Please try again in a minute",
                "<p>We could not record your request just now. Nothing was changed; please "
                "press the button again in a minute.</p>",
                status=503,
            )
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        event_id, is_new = journaled
        if drainer is not None and is_new:
            drainer.notify()
        log.info("unsubscribe_accepted", event_id=event_id, duplicate=not is_new)
        return page(
            "You are unsubscribed",
            f"<p>{escape(email)} will get no more emails from us. It can take a few minutes for "
            "emails already on their way to stop.</p>",
        )

    return [
        Route("/unsubscribe", show, methods=["GET"]),
        Route("/unsubscribe", confirm, methods=["POST"]),
    ]

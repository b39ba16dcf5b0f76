"""GET /outbox: the messages the embedded default "sent", as a recipient would see them.

Only mounted when MAIL_BACKEND=outbox. The HTML part is shown in a sandboxed iframe (no scripts,
no same-origin), so a template cannot reach this page.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from html import escape
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from notion_queue.mail.outbox import sent_messages

_NAME = re.compile(r"^[A-Za-z0-9T-]+\.eml$")

STYLE = """<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#222}table{border-collapse:collapse;width:100%}td,th{text-align:left;
padding:.4rem .6rem;border-bottom:1px solid #ddd}iframe{width:100%;height:32rem;border:1px solid
#ccc}pre{white-space:pre-wrap;background:#f6f6f6;padding:1rem}</style>"""


def _read(path: Path) -> EmailMessage:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _part(message: EmailMessage, kind: str) -> str:
    body = message.get_body(preferencelist=(kind,))
    return str(body.get_content()) if body is not None else ""


def outbox_routes(folder: Path) -> list[Route]:
    async def index(request: Request) -> Response:
        files = sent_messages(Path(folder))[::-1]  # newest first
        rows = []
        for path in files[:500]:
            message = _read(path)
            rows.append(
                f"<tr><td>{escape(str(message['Date']))}</td><td>{escape(str(message['To']))}</td>"
                f'<td><a href="/outbox/{escape(path.name)}">{escape(str(message["Subject"]))}</a>'
                "</td></tr>"
            )
        table = (
            "<table><tr><th>Date</th><th>To</th><th>Subject</th></tr>" + "".join(rows) + "</table>"
            if rows
            else "<p>No messages yet. Post a webhook and wait for the worker's next poll.</p>"
        )
        return HTMLResponse(
            f"<!doctype html><title>Outbox</title>{STYLE}<h1>Outbox</h1>"
            f"<p>{len(files)} message(s) in {escape(str(folder))}</p>{table}"
        )

    async def show(request: Request) -> Response:
        name = request.path_params["name"]
        path = Path(folder) / name
        if not _NAME.match(name) or not path.is_file():
            return HTMLResponse("<!doctype html><h1>No such message</h1>", status_code=404)
        message = _read(path)
        headers = "".join(
            f"<tr><th>{escape(h)}</th><td>{escape(str(message[h]))}</td></tr>"
            for h in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe")
            if message[h]
        )
        html = _part(message, "html")
        text = _part(message, "plain")
        return HTMLResponse(
            f"<!doctype html><title>{escape(str(message['Subject']))}</title>{STYLE}"
            f'<p><a href="/outbox">← Outbox</a></p><table>{headers}</table>'
            f'<h2>HTML</h2><iframe sandbox="" srcdoc="{escape(html, quote=True)}"></iframe>'
            f"<h2>Plain text</h2><pre>{escape(text)}</pre>"
        )

    return [
        Route("/outbox", index, methods=["GET"]),
        Route("/outbox/{name}", show, methods=["GET"]),
    ]

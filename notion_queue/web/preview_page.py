"""GET /preview/<template id>?token=…: a template as a recipient sees it, with the seeds' sample
values (query parameters override them), for the Templates row's `Preview` link.

The token is an HMAC of the Template ID under a key derived from UNSUBSCRIBE_SECRET
(`UnsubscribeTokens.derived_key`): it opens that template's preview and nothing else, and
changes nothing. A missing or forged token gets 403. The HTML part is shown in a sandboxed
iframe (srcdoc, no scripts, no same-origin) under a Content-Security-Policy that lets the page
load nothing but the email's images.
"""

from __future__ import annotations

import base64
import hmac
from html import escape
from urllib.parse import quote

import anyio.to_thread
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from notion_queue.clock import Clock
from notion_queue.compose import Composer
from notion_queue.errors import NotionQueueError, PermanentError, TemplateNotFound
from notion_queue.logs import get_logger
from notion_queue.mail.base import OutgoingEmail
from notion_queue.sequences import Catalog
from notion_queue.settings import Settings
from notion_queue.store.base import TemplateStore
from notion_queue.template_samples import Sample, compose_sample, sample_row
from notion_queue.templates import TemplateSource
from notion_queue.unsubscribe import UnsubscribeTokens

log = get_logger(__name__)
PREVIEW_CACHE_SECONDS = 5.0  # a marketer edits, then reloads the preview: show the edit
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
STYLE = """<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#222}iframe{width:100%;height:40rem;border:1px solid #ccc}
pre{white-space:pre-wrap;background:#f6f6f6;padding:1rem}th{text-align:left;padding-right:1rem}
</style>"""


class PreviewTokens:
    def __init__(self, unsubscribe: UnsubscribeTokens) -> None:
        self._key = unsubscribe.derived_key("template preview")

    def token(self, template_id: str) -> str:
        mac = hmac.new(self._key, b"preview:" + template_id.encode(), "sha256").digest()[:18]
        return base64.urlsafe_b64encode(mac).decode()

    def valid(self, template_id: str, token: str) -> bool:
        return hmac.compare_digest(self.token(template_id).encode(), token.strip().encode())

    def url(self, base_url: str, template_id: str) -> str:
        return (
            f"{base_url.rstrip('/')}/preview/{quote(template_id, safe='')}"
            f"?token={quote(self.token(template_id))}"
        )


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"{STYLE}</head><body>{body}</body></html>",
        status_code=status,
        headers=HEADERS,
    )


def preview_html(template_id: str, email: OutgoingEmail, sample: Sample) -> str:
    variables = sample.row.variables()
    values = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(str(value))}</td></tr>"
        for name, value in sorted(variables.items())
    )
    ignored = (
        f"<p>Ignored (not fields the catalog declares): {escape(', '.join(sample.ignored))}</p>"
        if sample.ignored
        else ""
    )
    return (
        f"<h1>Preview of {escape(template_id)}</h1>"
        f"<p>Subject: <strong id=subject>{escape(email.subject)}</strong></p>"
        f"<p>To: {escape(email.to)} (sample values; add ?name=value to the address to change "
        "one)</p>"
        f'<h2>HTML</h2><iframe id=html sandbox="" title="the email as a recipient sees it" '
        f'srcdoc="{escape(email.html, quote=True)}"></iframe>'
        f"<h2>Plain text</h2><pre id=text>{escape(email.text)}</pre>"
        f"<h2>Sample values</h2>{ignored}<table>{values}</table>"
    )


def _refused(reason: str) -> Response:
    return _page(
        "Sample value refused", f"<h1>Sample value refused</h1><p>{escape(reason)}</p>", 400
    )


def server_preview_routes(
    settings: Settings,
    store: TemplateStore | None,
    tokens: UnsubscribeTokens | None,
    catalog: Catalog,
    clock: Clock,
) -> list[Route]:
    """The server's preview route, composing as the worker does (none without a store)."""
    if store is None or tokens is None:
        return []
    composer = Composer(
        sender=settings.email_from,
        reply_to=settings.email_reply_to,
        public_base_url=settings.public_base_url,
        campaign_variables=catalog.variables,
        event_fields=catalog.fields,
        default_zone=settings.default_zone,
        unsubscribe=tokens,
    )
    cache = min(settings.template_cache_seconds, PREVIEW_CACHE_SECONDS)
    source = TemplateSource(store, clock, cache_seconds=cache)
    return preview_routes(tokens, source, composer, catalog, clock)


def preview_routes(
    tokens: UnsubscribeTokens,
    templates: TemplateSource,
    composer: Composer,
    catalog: Catalog,
    clock: Clock,
) -> list[Route]:
    previews = PreviewTokens(tokens)

    async def show(request: Request) -> Response:
        template_id = request.path_params["template_id"]
        token = request.query_params.get("token", "")
        if not token or not previews.valid(template_id, token):
            return _page(
                "Preview link not valid",
                "<h1>This preview link is not valid</h1><p>Open the Preview link of the "
                "template's row in the Templates database.</p>",
                403,
            )
        overrides = {k: v for k, v in request.query_params.items() if k != "token"}
        try:
            sample = sample_row(template_id, catalog, clock.now(), overrides=overrides)
        except ValidationError as exc:
            names = ", ".join(sorted({".".join(map(str, e["loc"])) for e in exc.errors()}))
            return _refused(f"these sample values do not fit: {names}")
        except ValueError as exc:
            return _refused(str(exc))
        try:
            email = await anyio.to_thread.run_sync(compose_sample, composer, templates, sample)
        except TemplateNotFound:
            return _page("No such template", f"<h1>No template {escape(template_id)}</h1>", 404)
        except PermanentError as exc:
            return _page(
                f"{template_id} cannot be rendered",
                f"<h1>{escape(template_id)} cannot be rendered</h1><p>{escape(str(exc))}</p>",
                422,
            )
        except NotionQueueError:  # the Templates database cannot be read right now
            return _page("Try again", "<h1>The templates cannot be read now</h1>", 503)
        log.info("template_previewed", template_id=template_id, overrides=sorted(overrides))
        return _page(f"Preview of {template_id}", preview_html(template_id, email, sample))

    return [Route("/preview/{template_id}", show, methods=["GET"])]

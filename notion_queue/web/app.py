"""The webhook server: validate, journal durably, answer 202. Nothing here waits on Notion."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from notion_queue import metrics
from notion_queue.clock import Clock
from notion_queue.intake.drainer import IntakeDrainer
from notion_queue.intake.handlers import Handler, build_handlers
from notion_queue.intake.journal import Journal
from notion_queue.intake.journaling import RETRY_AFTER_SECONDS, journal_event
from notion_queue.logs import get_logger
from notion_queue.needed_variables import NeededVariables, missing_variable
from notion_queue.production import endpoint_protection
from notion_queue.sequences import Catalog, load_catalog
from notion_queue.settings import Settings
from notion_queue.store.base import TemplateStore
from notion_queue.templates import load_packaged_templates
from notion_queue.unsubscribe import UnsubscribeTokens
from notion_queue.web.json_body import BodyError, content_type_problem, parse_webhook_body
from notion_queue.web.outbox_viewer import outbox_routes
from notion_queue.web.preview_page import server_preview_routes
from notion_queue.web.queue_page import QueuePageStore, queue_page_routes
from notion_queue.web.rate_limit import Refusal, UnsignedLimits
from notion_queue.web.readiness import readiness
from notion_queue.web.rejections import LogRejectedWebhooks
from notion_queue.web.signatures import (
    verify_calcom_signature,
    verify_calendly_signature,
    verify_resend_signature,
    verify_website_signature,
)
from notion_queue.web.unsubscribe_pages import unsubscribe_routes
from notion_queue.worker_status import read_status

log = get_logger("notion_queue.server")
MAX_BODY_BYTES = 64 * 1024


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def read_body(request: Request) -> bytes | JSONResponse:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return error(413, f"body is larger than {MAX_BODY_BYTES // 1024} KiB")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return error(413, f"body is larger than {MAX_BODY_BYTES // 1024} KiB")
    return body


def parse_json(body: bytes) -> dict[str, Any] | JSONResponse:
    try:
        return parse_webhook_body(body)
    except BodyError as exc:
        if exc.field is None:
            return error(exc.status, exc.message)
        return error(exc.status, str(exc), problems=[{"field": exc.field, "message": exc.message}])


def not_journaled() -> JSONResponse:
    """The event is not saved: the caller must send it again (never a 202, never a 500)."""
    return JSONResponse(
        {"error": "the event could not be saved; send it again later"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def too_many(refusal: Refusal) -> JSONResponse:
    response = error(429, refusal.message)
    response.headers["Retry-After"] = str(refusal.retry_after)
    return response


def validation_problem(exc: ValidationError) -> JSONResponse:
    problems = []
    for item in exc.errors():
        field = ".".join(str(part) for part in item["loc"]) or "body"
        message = item["msg"].removeprefix("Value error, ")
        problems.append({"field": field, "message": message})
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return error(422, summary, problems=problems)


def create_app(
    settings: Settings,
    *,
    journal: Journal,
    drainer: IntakeDrainer | None,
    clock: Clock,
    unsubscribe: UnsubscribeTokens | None = None,
    catalog: Catalog | None = None,
    templates: TemplateStore | None = None,
    store: QueuePageStore | None = None,
) -> Starlette:
    """`drainer=None` journals without draining (tests that inspect the journal).
    `catalog` decides the website endpoints (its triggers) and which event fields are taken
    (default: SEQUENCES_FILE or the packaged). `templates` serves the preview page, `store` the
    queue page (/queue, when ADMIN_TOKEN is set)."""
    catalog = catalog if catalog is not None else load_catalog(settings.sequences_file)
    handlers = build_handlers(catalog)
    needed = NeededVariables.of(catalog, load_packaged_templates())
    limits = UnsignedLimits(settings, clock)

    def check_signature(handler: Handler, body: bytes, request: Request) -> str | None:
        """Each source signs its own way; a source with no secret configured is not checked
        (development: production turns such an endpoint off, see production.py)."""
        if handler.signature == "calcom" and settings.calcom_webhook_secret is not None:
            return verify_calcom_signature(
                settings.calcom_webhook_secret.get_secret_value(), body, request.headers
            )
        if handler.signature == "calendly" and settings.calendly_webhook_signing_key is not None:
            return verify_calendly_signature(
                settings.calendly_webhook_signing_key.get_secret_value(),
                body,
                request.headers,
                clock.now().timestamp(),
            )
        if handler.signature == "resend" and settings.resend_webhook_secret is not None:
            return verify_resend_signature(
                settings.resend_webhook_secret.get_secret_value(), body, request.headers
            )
        if handler.signature == "website" and settings.webhook_secret is not None:
            return verify_website_signature(
                settings.webhook_secret.get_secret_value(), body, request.headers
            )
        return None

    def make_endpoint(handler: Handler) -> Any:
        protection = endpoint_protection(settings, handler.signature)
        limited = protection.protection == "unsigned_rate_limited"

        async def endpoint(request: Request) -> Response:
            if protection.protection == "off":
                return error(404, protection.off_message)
            host = request.client.host if request.client else ""
            if limited and (refusal := limits.check_client(host)):
                return too_many(refusal)
            unsupported = content_type_problem(request.headers.get("content-type"))
            if unsupported:
                return error(415, unsupported)
            body = await read_body(request)
            if isinstance(body, Response):
                return body
            problem = check_signature(handler, body, request)
            if problem:
                return error(401, problem)
            data = parse_json(body)
            if isinstance(data, Response):
                return data
            try:
                payload = handler.model.model_validate(data)
            except ValidationError as exc:
                return validation_problem(exc)
            reason = handler.ignored(payload)
            if reason:
                log.info("event_ignored", kind=handler.kind, reason=reason)
                return JSONResponse({"status": "ignored", "reason": reason}, status_code=202)
            try:
                plan = handler.plan(payload, clock.now(), catalog)  # pure: can it be applied?
            except ValueError as exc:
                return error(422, str(exc))
            missing = missing_variable(needed, plan)
            if missing:
                return error(422, missing)
            if limited and (refusal := limits.check_address(plan.email)):
                return too_many(refusal)
            for name in plan.ignored_fields:
                log.info("event_field_ignored", kind=handler.kind, field=name)
            for reason in plan.dropped_fields:
                log.warning("event_field_dropped", kind=handler.kind, reason=reason)
            journaled = await journal_event(
                journal,
                handler.kind,
                handler.event_key(payload, request.headers),
                payload.model_dump(mode="json"),
                clock.now(),
            )
            if journaled is None:
                return not_journaled()
            event_id, is_new = journaled
            if drainer is not None and is_new:
                drainer.notify()
            log.info("event_accepted", kind=handler.kind, event_id=event_id, duplicate=not is_new)
            return JSONResponse(
                {"status": "accepted", "event_id": event_id, "duplicate": not is_new},
                status_code=202,
            )

        return endpoint

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        worker = read_status(settings.state_dir)
        ready, body = await anyio.to_thread.run_sync(readiness, journal, drainer, worker)
        return JSONResponse(body, status_code=200 if ready else 503)

    routes = [
        Route(f"/webhook/{kind}", make_endpoint(handler), methods=["POST"])
        for kind, handler in handlers.items()
        if handler.route
    ]
    if unsubscribe is not None:
        routes += unsubscribe_routes(unsubscribe, journal, drainer, clock)
    if settings.mail_backend == "outbox":
        routes += outbox_routes(settings.outbox_dir)
    routes += server_preview_routes(settings, templates, unsubscribe, catalog, clock)
    routes += queue_page_routes(settings, store, clock, catalog=catalog, unsubscribe=unsubscribe)

    async def metrics_endpoint(request: Request) -> Response:
        metrics.JOURNAL_BACKLOG.set(journal.backlog())
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    routes += [
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if drainer is not None:
            drainer.start()
        log.info("server_started", webhooks=sorted(k for k, h in handlers.items() if h.route))
        for kind, handler in handlers.items():
            if handler.route:
                how = endpoint_protection(settings, handler.signature)
                log.info(
                    "endpoint_protection",
                    endpoint=f"/webhook/{kind}",
                    protection=how.protection,
                    setting=how.setting,
                )
        try:
            yield
        finally:
            if drainer is not None:
                drainer.stop()
            log.info("server_stopped")

    middleware = [Middleware(LogRejectedWebhooks)]  # outermost: sees every 4xx of /webhook/
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["POST", "OPTIONS"],
                allow_headers=["Content-Type", "X-Webhook-Signature"],
            )
        )
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)

"""One `event_rejected` log line for every webhook the server refuses with a 4xx, whoever in the
app refused it (size, signature, JSON, validation, content type, rate limit, an endpoint that is
off), so `journalctl ... | grep event_rejected` finds them all.

The line carries the endpoint, the status and the reason the caller was told (our own message,
capped), never the body: a 422's reason names the field and the problem, and the quoted value
the caller sent (`'x' is not a valid email address`) is left out. `stage="request"` tells it from the drainer's `event_rejected`, which
is about a journaled event that cannot be applied (it carries `event_id` and `kind` instead).
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notion_queue.logs import get_logger

log = get_logger("notion_queue.server")
WEBHOOK_PREFIX = "/webhook/"
MAX_REASON = 200
NO_SUCH_ENDPOINT = "no such endpoint (unknown, or off in these settings)"
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")  # a repr() of what was sent


def rejection_reason(status: int, body: bytes) -> str:
    """The `error` of our JSON answers; Starlette's own plain-text 404/405 in words."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str):
        return (_QUOTED.sub("…", error) if status == 422 else error)[:MAX_REASON]
    if status == 404:
        return NO_SUCH_ENDPOINT
    return body[:MAX_REASON].decode("utf-8", "replace") or f"HTTP {status}"


class LogRejectedWebhooks:
    """ASGI middleware: watches the answers to /webhook/... and logs the 4xx ones."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(WEBHOOK_PREFIX):
            await self.app(scope, receive, send)
            return
        status = 0
        body = bytearray()

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and 400 <= status < 500:
                body.extend(message.get("body", b"")[: 4096 - len(body)])
                if not message.get("more_body", False):
                    log.warning(
                        "event_rejected",
                        stage="request",
                        endpoint=path[:100],
                        status=status,
                        reason=rejection_reason(status, bytes(body)),
                    )
            await send(message)

        await self.app(scope, receive, watch)

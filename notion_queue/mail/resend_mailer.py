"""The production Mailer: Resend, through the resend SDK, with an Idempotency-Key on every send
(one email, or a batch of up to 100 under one key: see mail/batch.py).

Errors are classified by (HTTP status, Resend error name), never by exception class; see
/shared/reference/integrations.md §A5. The SDK reports a timeout or a broken connection as a
500 "HttpClientError": that send may have happened, so it is retried with the same key.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import resend
from resend.exceptions import ResendError
from resend.http_client import HTTPClient

from notion_queue import metrics
from notion_queue.clock import Clock
from notion_queue.errors import (
    AccountError,
    MaybeWritten,
    PermanentError,
    RateLimited,
    RetryableError,
)
from notion_queue.mail.base import OutgoingEmail, SendResult
from notion_queue.pacing import Pacer, TokenBucket

DEFAULT_API_URL = "https://api.resend.com"


class HttpxResendClient(HTTPClient):
    """A pooled httpx client for the SDK (its default opens a connection per request); also the
    seam where tests plug in the fake Resend's transport."""

    def __init__(self, transport: httpx.BaseTransport | None = None, timeout: float = 30) -> None:
        self._client = httpx.Client(transport=transport, timeout=timeout)

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        json: dict[str, object] | list[object] | None = None,
        files: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        response = self._client.request(method, url, headers=dict(headers), json=json, data=data)
        return response.content, response.status_code, dict(response.headers)

    def close(self) -> None:
        self._client.close()


class ResendMailer:
    def __init__(
        self,
        api_key: str,
        clock: Clock,
        *,
        api_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        requests_per_second: float = 2.0,
        pacer: Pacer | None = None,
    ) -> None:
        """`pacer`: where the turns to call Resend come from (the account's limit shared by
        several workers: store/postgres_pacing.py); by default this process's own bucket at
        `requests_per_second`."""
        # The SDK keeps its configuration in module globals; one mailer per process sets them.
        resend.api_key = api_key
        resend.api_url = (api_url or DEFAULT_API_URL).rstrip("/")
        self._http = HttpxResendClient(transport)
        resend.default_http_client = self._http
        self.clock = clock
        # Evenly spaced, no burst: Resend states requests a second, not how many may come at
        # once, and a burst it refuses costs a whole Retry-After second of sending (a 429).
        self.pacer: Pacer = pacer or TokenBucket(clock, requests_per_second, 1.0)
        self._lock = threading.Lock()
        self.rate_limited = 0

    def send(self, email: OutgoingEmail) -> SendResult:
        self.pacer.acquire()
        metrics.API_CALLS.labels("resend", "send").inc()
        try:
            response = resend.Emails.send(
                _params(email),  # type: ignore[arg-type]
                {"idempotency_key": email.idempotency_key},
            )
        except ResendError as exc:
            raise self._classify(exc) from None
        # A replay (same key within 24 h) answers the first email's id; Resend documents no way
        # to tell it from a first send, so none is guessed at: `replayed` stays False.
        return SendResult(message_id=str(response["id"]))

    def send_batch(self, emails: Sequence[OutgoingEmail], idempotency_key: str) -> list[SendResult]:
        """One `POST /emails/batch` (strict validation: all or nothing), one request against
        the rate limit whatever its size. Each email keeps its own headers and tags; the key
        covers the batch (Resend has no per-item key)."""
        self.pacer.acquire()
        metrics.API_CALLS.labels("resend", "send_batch").inc()
        try:
            response = resend.Batch.send(
                [_params(email) for email in emails],  # type: ignore[misc]
                {"idempotency_key": idempotency_key},
            )
        except ResendError as exc:
            raise self._classify(exc) from None
        data = response.get("data") or []
        if len(data) != len(emails):
            # Strict mode answers an id per email or an error: anything else may have sent.
            raise MaybeWritten(f"Resend answered {len(data)} ids for a batch of {len(emails)}")
        return [SendResult(message_id=str(item["id"])) for item in data]

    def _classify(self, exc: ResendError) -> Exception:
        code = int(exc.code) if str(exc.code).isdigit() else 500
        name = str(exc.error_type or "")
        message = f"Resend {code} {name}: {exc.message}"
        headers = {k.lower(): v for k, v in dict(exc.headers or {}).items()}
        retry_after = _float(headers.get("retry-after"))
        if name == "HttpClientError":
            return MaybeWritten("Resend did not answer (timeout or network error); may have sent")
        if code == 429 and name in ("daily_quota_exceeded", "monthly_quota_exceeded"):
            return AccountError(message, retry_after=_seconds_to_next_utc_day(self.clock.now()))
        if code == 429:
            self.rate_limited += 1
            metrics.RATE_LIMITED.labels("resend").inc()
            wait = retry_after or 1.0
            self.pacer.hold_off(wait)
            return RateLimited(message, retry_after=wait)
        if code in (401, 403):
            return AccountError(message)
        if code == 409 and name == "concurrent_idempotent_requests":
            return RetryableError(message, retry_after=retry_after or 1.0)
        if code >= 500:
            return RetryableError(message, retry_after=retry_after)
        return PermanentError(message)

    def close(self) -> None:
        self._http.close()


def _params(email: OutgoingEmail) -> dict[str, Any]:
    """Resend's SendEmailRequest for one email (the same in a batch: tags and headers too)."""
    params: dict[str, Any] = {
        "from": email.sender,
        "to": [email.to],
        "subject": email.subject,
        "html": email.html,
        "text": email.text,
    }
    if email.reply_to:
        params["reply_to"] = [email.reply_to]
    if email.headers:
        params["headers"] = dict(email.headers)
    if email.tags:
        params["tags"] = [{"name": k, "value": v} for k, v in email.tags.items()]
    return params


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _seconds_to_next_utc_day(now: datetime) -> float:
    tomorrow = (now.astimezone(UTC) + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return (tomorrow - now).total_seconds()

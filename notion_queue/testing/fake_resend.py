"""`FakeResend`: an in-process emulator of Resend's sending API, Idempotency-Key included.

It answers `POST /emails`, `POST /emails/batch` and `GET /emails/{id}` the way the real API does
(reference: integrations.md, A1–A5): Bearer auth, body validation with Resend's error names and
messages, a token-bucket rate limit with the `ratelimit-*` headers, an optional daily quota, and
Idempotency-Key semantics (a replay within 24 h returns the original answer and sends nothing).

Every accepted email lands in `sent`; every request that reached the server lands in `requests`.
Faults are injected with `fail_next` / `random_faults` (including "sent, but the client never
heard": `commit=True`), `hold_in_flight` (409 concurrent_idempotent_requests) and `take_down`.

Use it in process through `transport()` (an `httpx.MockTransport`) or over loopback with `serve()`.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx

from notion_queue.clock import Clock, SystemClock
from notion_queue.testing._http import TokenBucket
from notion_queue.testing._http import serve as _serve

__all__ = ["FakeResend", "RecordedRequest", "SentEmail"]

IDEMPOTENCY_TTL = timedelta(hours=24)
MAX_IDEMPOTENCY_KEY = 256
MAX_RECIPIENTS = 50
MAX_BATCH = 100
MAX_TAG = 256

_ADDRESS = re.compile(
    r"[^\s@<>,;:\"()\[\]\\]+@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
_NAMED = re.compile(r"(?P<name>[^<>]*?)\s*<(?P<address>[^<>]*)>")
_TAG = re.compile(r"[A-Za-z0-9_-]+")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

_FORMAT_HINT = (
    "The email address needs to follow the `email@example.com` or "
    "`Name <email@example.com>` format."
)

_DEFAULT_MESSAGES = {
    "internal_server_error": "An unexpected error occurred.",
    "application_error": "An unexpected error occurred, please try again later.",
    "rate_limit_exceeded": "Too many requests. Please slow down.",
    "daily_quota_exceeded": "You have reached your daily email sending quota.",
    "monthly_quota_exceeded": "You have reached your monthly email sending quota.",
    "security_error": "We may have found a security issue with the request.",
    "not_found": "The requested endpoint does not exist.",
}

_HTML_PAGE = (
    "<html><head><title>{status} {reason}</title></head><body><center><h1>{status} {reason}"
    "</h1></center><hr><center>cloudflare</center></body></html>"
)


@dataclass(frozen=True)
class SentEmail:
    """One email Resend accepted (a replay of an idempotent request adds none)."""

    id: str
    sender: str
    to: tuple[str, ...]
    subject: str
    html: str | None
    text: str | None
    reply_to: tuple[str, ...]
    headers: dict[str, str]
    tags: dict[str, str]
    idempotency_key: str | None
    at: datetime
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    scheduled_at: str | None = None

    @property
    def recipients(self) -> tuple[str, ...]:
        """The bare addresses of to, cc and bcc, lowercased."""
        return tuple(
            address
            for value in (*self.to, *self.cc, *self.bcc)
            if (address := _bare_address(value)) is not None
        )


@dataclass(frozen=True)
class RecordedRequest:
    """One request that reached the fake. `status` is 0 (name "timeout") when no answer was sent."""

    method: str
    path: str
    status: int
    name: str | None
    at: float
    idempotency_key: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class _Fault:
    status: int
    name: str
    message: str | None
    commit: bool
    timeout: bool
    html: bool
    retry_after: int | None


@dataclass
class _Stored:
    fingerprint: str
    status: int
    body: bytes
    at: datetime


class _ApiError(Exception):
    def __init__(
        self, status: int, name: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message
        self.headers = dict(headers or {})


@dataclass
class _Outcome:
    response: httpx.Response
    name: str | None = None
    replayed: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def _bare_address(value: str) -> str | None:
    """The address inside "Name <addr>" or "addr", lowercased; None when it is not one."""
    value = value.strip()
    named = _NAMED.fullmatch(value)
    if named is not None:
        value = named.group("address").strip()
    if _ADDRESS.fullmatch(value) is None:
        return None
    return value.lower()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _json_response(
    status: int, payload: object, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    body = json.dumps(payload).encode()
    return httpx.Response(
        status,
        headers={"content-type": "application/json; charset=utf-8", **(headers or {})},
        content=body,
    )


class FakeResend:
    """Resend's HTTP API in process. Thread-safe; time comes from `clock`."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        api_key: str = "re_test_key",
        rate_limit: float | None = 2.0,
        burst: float = 2.0,
        verified_domains: Iterable[str] = ("example.com", "businessx.com"),
        daily_quota: int | None = None,
        seed: int = 0,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.api_key = api_key
        self.rate_limit = rate_limit
        self.verified_domains = frozenset(domain.lower() for domain in verified_domains)
        self.daily_quota = daily_quota
        self.latency: tuple[float, float] | None = None
        self.sent: list[SentEmail] = []
        self.requests: list[RecordedRequest] = []
        self._bucket = TokenBucket(self.clock, rate_limit, burst) if rate_limit else None
        self._lock = threading.RLock()
        self._ids = random.Random(seed)
        self._fault_rng = random.Random(seed + 1)
        self._latency_rng = random.Random(seed + 2)
        self._faults: deque[_Fault] = deque()
        self._random: tuple[float, tuple[tuple[int, str], ...], float, float] | None = None
        self._held: set[str] = set()
        self._active: set[str] = set()
        self._idempotency: dict[str, _Stored] = {}
        self._per_day: dict[date, int] = {}
        self._down = False

    # ------------------------------------------------------------------ plumbing

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (thread-safe). Raises httpx errors for timeouts and outages."""
        return self._dispatch(request, served=False)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    @contextlib.contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve over real HTTP on loopback; yields the base URL (use it as `resend.api_url`)."""
        with _serve(lambda request: self._dispatch(request, served=True), host, port) as url:
            yield url

    # ------------------------------------------------------------------ assertions

    def sent_to(self, address: str) -> list[SentEmail]:
        """Emails accepted for `address` (in to, cc or bcc; "Name <addr>" forms match too)."""
        wanted = _bare_address(address) or address.strip().lower()
        with self._lock:
            return [email for email in self.sent if wanted in email.recipients]

    def count(self, status: int | None = None) -> int:
        """How many requests reached the fake, or how many were answered with `status`."""
        with self._lock:
            if status is None:
                return len(self.requests)
            return sum(1 for recorded in self.requests if recorded.status == status)

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        *,
        status: int = 500,
        name: str = "internal_server_error",
        message: str | None = None,
        times: int = 1,
        commit: bool = False,
        timeout: bool = False,
        html: bool = False,
        retry_after: int | None = None,
    ) -> None:
        """Make the next `times` requests (past auth and the rate limit) fail this way.

        commit=True: the request is processed first (an email is accepted and its idempotency key
        stored) and only then is the error or timeout returned. timeout=True raises
        httpx.ReadTimeout (served: the connection is dropped). html=True: a text/html error page.
        """
        fault = _Fault(status, name, message, commit, timeout, html, retry_after)
        with self._lock:
            self._faults.extend([fault] * times)

    def random_faults(
        self,
        probability: float,
        *,
        statuses: Iterable[tuple[int, str]] = (
            (500, "internal_server_error"),
            (503, "application_error"),
        ),
        commit_probability: float = 0.0,
        timeout_probability: float = 0.0,
    ) -> None:
        """Fail each request with `probability` (seeded); 0 turns random faults off."""
        with self._lock:
            choices = tuple(statuses)
            self._random = (
                (probability, choices, commit_probability, timeout_probability)
                if probability > 0 and choices
                else None
            )

    def hold_in_flight(self, idempotency_key: str) -> None:
        """Pretend a request with this key is still being processed (→ 409 concurrent)."""
        with self._lock:
            self._held.add(idempotency_key)

    def release_in_flight(self, idempotency_key: str) -> None:
        with self._lock:
            self._held.discard(idempotency_key)

    def take_down(self) -> None:
        """Every request raises httpx.ConnectError (served: the connection is dropped)."""
        with self._lock:
            self._down = True

    def bring_up(self) -> None:
        with self._lock:
            self._down = False

    # ------------------------------------------------------------------ request flow

    def _dispatch(self, request: httpx.Request, *, served: bool) -> httpx.Response:
        request.read()
        with self._lock:
            if self._down:
                raise httpx.ConnectError("FakeResend is down", request=request)
        method = request.method.upper()
        path = request.url.path.rstrip("/") or "/"
        claimed: str | None = None
        key: str | None = None
        fault: _Fault | None = None
        try:
            try:
                with self._lock:
                    self._authenticate(request)
                    self._take_token()
                    if method == "POST":
                        key = self._idempotency_key(request)
                    if key is not None:
                        if key in self._held or key in self._active:
                            raise _ApiError(
                                409,
                                "concurrent_idempotent_requests",
                                "Same idempotency key used while original request is still in "
                                "progress. Try the request again later.",
                            )
                        self._active.add(key)
                        claimed = key
                    fault = self._draw_fault()
                    delay = self._latency() if served else 0.0
                if delay > 0:
                    time.sleep(delay)
                with self._lock:
                    if fault is not None and not fault.commit:
                        outcome = None
                    else:
                        outcome = self._route(method, path, request, key)
            except _ApiError as error:
                outcome = _Outcome(
                    _json_response(
                        error.status,
                        {"statusCode": error.status, "name": error.name, "message": error.message},
                    ),
                    name=error.name,
                    extra=error.headers,
                )
            with self._lock:
                if fault is not None:
                    return self._fail(request, method, path, key, fault)
                assert outcome is not None
                response = outcome.response
                for name, value in {**self._rate_headers(), **outcome.extra}.items():
                    response.headers[name] = value
                self._record(
                    method, path, response.status_code, outcome.name, key, outcome.replayed
                )
                return response
        finally:
            if claimed is not None:
                with self._lock:
                    self._active.discard(claimed)

    def _record(
        self,
        method: str,
        path: str,
        status: int,
        name: str | None,
        key: str | None,
        replayed: bool = False,
    ) -> None:
        self.requests.append(
            RecordedRequest(method, path, status, name, self.clock.monotonic(), key, replayed)
        )

    def _authenticate(self, request: httpx.Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _ApiError(
                401,
                "missing_api_key",
                "Missing API key in the authorization header. Include the following header "
                "`Authorization: Bearer YOUR_API_KEY` in the request.",
            )
        if token != self.api_key:
            raise _ApiError(403, "invalid_api_key", "API key is invalid")

    # -- rate limit and quota

    def _tokens(self) -> float:
        return self._bucket.remaining() if self._bucket is not None else 0.0

    def _take_token(self) -> None:
        if self._bucket is None or self.rate_limit is None:
            return
        wait = self._bucket.take()
        if wait > 0:
            retry_after = self._bucket.retry_after_header(wait)
            raise _ApiError(
                429,
                "rate_limit_exceeded",
                f"Too many requests. You can only make {_number(self.rate_limit)} requests per "
                "second. See rate limit response headers for more information. Or contact "
                "support to increase rate limit.",
                {
                    "retry-after": retry_after,
                    "ratelimit-limit": _number(self.rate_limit),
                    "ratelimit-remaining": "0",
                    "ratelimit-reset": retry_after,
                },
            )

    def _rate_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self._bucket is not None and self.rate_limit is not None:
            tokens = max(0.0, self._tokens())
            headers["ratelimit-limit"] = _number(self.rate_limit)
            headers["ratelimit-remaining"] = str(int(tokens))
            headers["ratelimit-reset"] = str(
                max(0, math.ceil((self._bucket.burst - tokens) / self.rate_limit))
            )
        if self.daily_quota is not None:
            headers["x-resend-daily-quota"] = str(self._used_today())
        return headers

    def _used_today(self) -> int:
        return self._per_day.get(self.clock.now().date(), 0)

    def _check_quota(self, emails: int) -> None:
        if self.daily_quota is not None and self._used_today() + emails > self.daily_quota:
            raise _ApiError(429, "daily_quota_exceeded", _DEFAULT_MESSAGES["daily_quota_exceeded"])

    # -- faults

    def _draw_fault(self) -> _Fault | None:
        if self._faults:
            return self._faults.popleft()
        if self._random is None:
            return None
        probability, choices, commit_probability, timeout_probability = self._random
        rng = self._fault_rng
        if rng.random() >= probability:
            return None
        status, name = rng.choice(choices)
        commit = rng.random() < commit_probability
        timeout = rng.random() < timeout_probability
        return _Fault(status, name, None, commit, timeout, False, None)

    def _latency(self) -> float:
        if self.latency is None:
            return 0.0
        low, high = self.latency
        return self._latency_rng.uniform(low, high)

    def _fail(
        self, request: httpx.Request, method: str, path: str, key: str | None, fault: _Fault
    ) -> httpx.Response:
        if fault.timeout:
            self._record(method, path, 0, "timeout", key)
            raise httpx.ReadTimeout("FakeResend: injected timeout", request=request)
        headers = self._rate_headers()
        if fault.retry_after is not None:
            headers["retry-after"] = str(fault.retry_after)
        if fault.html:
            reason = httpx.codes.get_reason_phrase(fault.status) or "Error"
            response = httpx.Response(
                fault.status,
                headers={"content-type": "text/html", **headers},
                content=_HTML_PAGE.format(status=fault.status, reason=reason).encode(),
            )
        else:
            message = fault.message or _DEFAULT_MESSAGES.get(fault.name, "An error occurred.")
            response = _json_response(
                fault.status,
                {"statusCode": fault.status, "name": fault.name, "message": message},
                headers,
            )
        self._record(method, path, fault.status, fault.name, key)
        return response

    # -- idempotency

    def _idempotency_key(self, request: httpx.Request) -> str | None:
        if "idempotency-key" not in request.headers:
            return None
        key = str(request.headers["idempotency-key"])
        if not key or len(key) > MAX_IDEMPOTENCY_KEY:
            raise _ApiError(
                400,
                "invalid_idempotency_key",
                f"The idempotency key must be between 1-{MAX_IDEMPOTENCY_KEY} characters.",
            )
        return key

    def _replay(self, key: str, fingerprint: str) -> _Outcome | None:
        stored = self._idempotency.get(key)
        if stored is not None and self.clock.now() - stored.at >= IDEMPOTENCY_TTL:
            del self._idempotency[key]
            stored = None
        if stored is None:
            return None
        if stored.fingerprint != fingerprint:
            raise _ApiError(
                409,
                "invalid_idempotent_request",
                "Same idempotency key used with a different request payload. Change your "
                "idempotency key or payload.",
            )
        # The same answer as the first time, and nothing Resend does not document (no header
        # marks a replay); `replayed` is only the fake's own record of it.
        response = httpx.Response(
            stored.status,
            headers={"content-type": "application/json; charset=utf-8"},
            content=stored.body,
        )
        return _Outcome(response, replayed=True)

    def _remember(self, key: str | None, fingerprint: str, response: httpx.Response) -> None:
        if key is not None:
            self._idempotency[key] = _Stored(
                fingerprint, response.status_code, response.content, self.clock.now()
            )

    # -- routing

    def _route(self, method: str, path: str, request: httpx.Request, key: str | None) -> _Outcome:
        if path in ("/emails", "/emails/batch"):
            if method != "POST":
                raise _ApiError(405, "method_not_allowed", "Method Not Allowed")
            return self._post(path, request, key)
        if path.startswith("/emails/") and path.count("/") == 2:
            if method != "GET":
                raise _ApiError(405, "method_not_allowed", "Method Not Allowed")
            return self._retrieve(path.removeprefix("/emails/"))
        raise _ApiError(404, "not_found", _DEFAULT_MESSAGES["not_found"])

    def _post(self, path: str, request: httpx.Request, key: str | None) -> _Outcome:
        raw = request.content
        try:
            body: Any = json.loads(raw) if raw else None
            canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        except (ValueError, UnicodeDecodeError):
            message = "The request body is not valid JSON."
            raise _ApiError(400, "validation_error", message) from None
        fingerprint = f"{path}\n{canonical}"
        if key is not None and (replayed := self._replay(key, fingerprint)) is not None:
            return replayed
        if path == "/emails":
            fields = self._validate(body, batch=False)
            self._check_quota(1)
            email = self._accept(fields, key)
            response = _json_response(200, {"id": email.id})
        else:
            response = self._batch(body, request, key)
        self._remember(key, fingerprint, response)
        return _Outcome(response)

    def _batch(self, body: Any, request: httpx.Request, key: str | None) -> httpx.Response:
        if not isinstance(body, list):
            raise _ApiError(422, "validation_error", "Invalid body: expected an array of emails.")
        if not 1 <= len(body) <= MAX_BATCH:
            raise _ApiError(
                422,
                "validation_error",
                f"Invalid body: a batch holds between 1 and {MAX_BATCH} emails.",
            )
        mode = request.headers.get("x-batch-validation", "strict").strip().lower()
        if mode not in ("strict", "permissive"):
            raise _ApiError(
                422,
                "validation_error",
                "Invalid `x-batch-validation` header: use `strict` or `permissive`.",
            )
        valid: list[dict[str, Any]] = []
        errors: list[dict[str, object]] = []
        for index, item in enumerate(body):
            try:
                valid.append(self._validate(item, batch=True))
            except _ApiError as error:
                if mode == "strict":
                    raise _ApiError(
                        error.status, error.name, f"emails[{index}]: {error.message}"
                    ) from None
                errors.append({"index": index, "message": error.message})
        self._check_quota(len(valid))
        data = [{"id": self._accept(fields, key).id} for fields in valid]
        payload: dict[str, object] = {"data": data}
        if mode == "permissive":
            payload["errors"] = errors
        return _json_response(200, payload)

    def _retrieve(self, email_id: str) -> _Outcome:
        for email in self.sent:
            if email.id == email_id:
                return _Outcome(
                    _json_response(
                        200,
                        {
                            "object": "email",
                            "id": email.id,
                            "from": email.sender,
                            "to": list(email.to),
                            "cc": list(email.cc) or None,
                            "bcc": list(email.bcc) or None,
                            "reply_to": list(email.reply_to) or None,
                            "subject": email.subject,
                            "html": email.html,
                            "text": email.text,
                            "created_at": email.at.isoformat(),
                            "scheduled_at": email.scheduled_at,
                            "last_event": "scheduled" if email.scheduled_at else "delivered",
                            "tags": [
                                {"name": name, "value": value} for name, value in email.tags.items()
                            ],
                        },
                    )
                )
        raise _ApiError(404, "not_found", "Email not found")

    def _accept(self, fields: Mapping[str, Any], key: str | None) -> SentEmail:
        now = self.clock.now()
        email = SentEmail(
            id=str(uuid.UUID(int=self._ids.getrandbits(128), version=4)),
            idempotency_key=key,
            at=now,
            **fields,
        )
        self.sent.append(email)
        self._per_day[now.date()] = self._per_day.get(now.date(), 0) + 1
        return email

    # -- validation

    def _validate(self, body: Any, *, batch: bool) -> dict[str, Any]:
        """The SentEmail fields of one SendEmailRequest, or an _ApiError naming the field."""
        if not isinstance(body, dict):
            raise _ApiError(422, "validation_error", "Invalid body: expected a JSON object.")
        for name in ("from", "to", "subject"):
            if body.get(name) in (None, "", []):
                raise _ApiError(422, "missing_required_field", f"Missing `{name}` field.")
        sender = body["from"]
        if not isinstance(sender, str) or _bare_address(sender) is None:
            raise _ApiError(422, "validation_error", f"Invalid `from` field. {_FORMAT_HINT}")
        to = self._addresses(body, "to", required=True)
        cc = self._addresses(body, "cc")
        bcc = self._addresses(body, "bcc")
        reply_to = self._addresses(body, "reply_to")
        subject = body["subject"]
        if not isinstance(subject, str):
            raise _ApiError(422, "validation_error", "Invalid `subject` field: expected a string.")
        html, text = body.get("html"), body.get("text")
        for name, value in (("html", html), ("text", text)):
            if value is not None and not isinstance(value, str):
                raise _ApiError(
                    422, "validation_error", f"Invalid `{name}` field: expected a string."
                )
        has_template = body.get("template") is not None
        if has_template and (html or text):
            raise _ApiError(
                422, "validation_error", "Do not combine `template` with `html` or `text`."
            )
        if not has_template and not html and not text:
            raise _ApiError(422, "missing_required_field", "Missing `html` or `text` field.")
        if batch:
            for name in ("attachments", "scheduled_at"):
                if body.get(name) is not None:
                    raise _ApiError(
                        422, "validation_error", f"`{name}` is not supported in batch emails."
                    )
        scheduled_at = body.get("scheduled_at")
        if scheduled_at is not None and not isinstance(scheduled_at, str):
            raise _ApiError(
                422, "validation_error", "Invalid `scheduled_at` field: expected a string."
            )
        headers = self._headers(body.get("headers"))
        tags = self._tags(body.get("tags"))
        domain = (_bare_address(sender) or "").rpartition("@")[2]
        if domain not in self.verified_domains:
            raise _ApiError(
                403,
                "validation_error",
                f"The {domain} domain is not verified. Please, add and verify your domain on "
                "https://resend.com/domains",
            )
        return {
            "sender": sender,
            "to": to,
            "cc": cc,
            "bcc": bcc,
            "reply_to": reply_to,
            "subject": subject,
            "html": html,
            "text": text,
            "headers": headers,
            "tags": tags,
            "scheduled_at": scheduled_at,
        }

    @staticmethod
    def _addresses(
        body: Mapping[str, Any], name: str, *, required: bool = False
    ) -> tuple[str, ...]:
        value = body.get(name)
        if value is None:
            return ()
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
            raise _ApiError(
                422, "validation_error", f"Invalid `{name}` field: expected a string or a list."
            )
        if required and not values:
            raise _ApiError(422, "missing_required_field", f"Missing `{name}` field.")
        if len(values) > MAX_RECIPIENTS:
            raise _ApiError(
                422,
                "validation_error",
                f"Invalid `{name}` field. Too many recipients: at most {MAX_RECIPIENTS} "
                "addresses are allowed.",
            )
        for item in values:
            if _bare_address(item) is None:
                raise _ApiError(422, "validation_error", f"Invalid `{name}` field. {_FORMAT_HINT}")
        return tuple(values)

    @staticmethod
    def _headers(value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _ApiError(422, "validation_error", "Invalid `headers` field: expected an object.")
        headers: dict[str, str] = {}
        for name, header in value.items():
            if not isinstance(header, str) or _HEADER_NAME.fullmatch(name) is None:
                raise _ApiError(
                    422,
                    "validation_error",
                    f"Invalid `headers` field: `{name}` must be a valid header name with a "
                    "string value.",
                )
            if "\r" in header or "\n" in header:
                raise _ApiError(
                    422,
                    "validation_error",
                    f"Invalid `headers` field: the value of `{name}` must not contain line "
                    "breaks (CR or LF).",
                )
            headers[name] = header
        return headers

    @staticmethod
    def _tags(value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, list):
            raise _ApiError(422, "validation_error", "Invalid `tags` field: expected a list.")
        tags: dict[str, str] = {}
        for tag in value:
            name = tag.get("name") if isinstance(tag, dict) else None
            tag_value = tag.get("value", "") if isinstance(tag, dict) else None
            if not isinstance(name, str) or not isinstance(tag_value, str):
                raise _ApiError(
                    422,
                    "validation_error",
                    "Invalid `tags` field: each tag needs a string `name` and `value`.",
                )
            for part in (name, tag_value):
                if part and (_TAG.fullmatch(part) is None or len(part) > MAX_TAG):
                    raise _ApiError(
                        422,
                        "validation_error",
                        "Invalid `tags` field. Tag names and values can only contain ASCII "
                        "letters (a-z, A-Z), numbers (0-9), underscores (_), or dashes (-), "
                        f"and can't be longer than {MAX_TAG} characters.",
                    )
            if not name:
                raise _ApiError(422, "missing_required_field", "Missing `tags.name` field.")
            tags[name] = tag_value
        return tags

"""Every Notion call goes through here: paced under the rate limit, retried by kind, and
translated into the errors of `notion_queue.errors`.

notion-client's own retries are off: it sleeps with `time.sleep` (untestable) and retries only
429 and, for GET, 500/503. Here:
- 429 and 529 wait for Retry-After, then go again, whatever the `rate_limit_reason` (Notion's
  request-limits page: reasons it has not documented are handled like any other 429); only
  `public_api_request_blocked`, which must not be retried, stops: an AccountError;
- reads and updates (a PATCH that sets values can be repeated) are retried on 5xx, 409,
  timeouts and network errors, with capped back-off;
- a create is never blindly repeated: its outcome is unknown, so MaybeWritten goes to the
  caller, who looks the Dedupe Key up first. When Notion names the page it committed anyway
  (`additional_data.committed_resource_id`), that page is the result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal, cast

import httpx
from notion_client import Client
from notion_client.errors import APIResponseError, HTTPResponseError, RequestTimeoutError

from notion_queue import metrics
from notion_queue.clock import Clock
from notion_queue.errors import (
    AccountError,
    ConfigError,
    MaybeWritten,
    PermanentError,
    RetryableError,
)
from notion_queue.logs import get_logger
from notion_queue.pacing import Backoff, TokenBucket

log = get_logger(__name__)

CallKind = Literal["read", "update", "create"]
NOTION_VERSION = "2025-09-03"
BLOCKED = "public_api_request_blocked"  # the one 429 Notion says not to retry


class NotFound(PermanentError):
    pass


def unshared(data_source_id: str, exc: NotFound) -> ConfigError:
    """A data source that was found at start and is gone now: unshared or deleted. A setting to
    fix, not a reason to drop the event that needed it."""
    return ConfigError(
        f"Notion data source {data_source_id} is no longer reachable ({exc}); share its database "
        "with the integration again (the database's ••• → Connections)"
    )


class NotionStats:
    """Counts of calls by endpoint and of 429s, for the benchmark and /metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {}
        self.rate_limited = 0
        self.errors = 0

    def count(self, name: str) -> None:
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def build_client(
    token: str, base_url: str, *, transport: httpx.BaseTransport | None = None
) -> Client:
    http = httpx.Client(transport=transport) if transport is not None else httpx.Client()
    return Client(
        auth=token,
        base_url=base_url.rstrip("/"),
        notion_version=NOTION_VERSION,
        client=http,
        retry=False,
        timeout_ms=30_000,
        logger=_quiet_logger(),
    )


def _quiet_logger() -> Any:
    import logging

    logger = logging.getLogger("notion_queue.notion_client")
    logger.setLevel(logging.ERROR)
    return logger


class NotionGateway:
    def __init__(
        self,
        client: Client,
        clock: Clock,
        *,
        requests_per_second: float = 2.7,
        burst: float = 3,
        max_retries: int = 5,
        max_rate_limit_waits: int = 10,
        backoff: Backoff | None = None,
    ) -> None:
        self.client = client
        self.clock = clock
        self.bucket = TokenBucket(clock, requests_per_second, burst)
        self.max_retries = max_retries
        self.max_rate_limit_waits = max_rate_limit_waits
        self.backoff = backoff or Backoff(base=0.5, cap=30)
        self.stats = NotionStats()

    def call(
        self, name: str, kind: CallKind, fn: Callable[[], Any], *, max_retries: int | None = None
    ) -> Any:
        """`max_retries` overrides the gateway's for this call (5xx, timeouts, network errors)."""
        limit = self.max_retries if max_retries is None else max_retries
        retries = 0
        waits = 0
        while True:
            self.bucket.acquire()
            self.stats.count(name)
            metrics.API_CALLS.labels("notion", name).inc()
            try:
                return fn()
            except APIResponseError as exc:
                error: Exception = exc
                status, code = exc.status, str(exc.code)
                headers = exc.headers
                additional = exc.additional_data or {}
            except HTTPResponseError as exc:  # codes notion-client does not know: 502, 529, ...
                error, status, code = exc, exc.status, str(exc.code)
                headers, additional = exc.headers, exc.additional_data or {}
            except (RequestTimeoutError, httpx.TransportError) as exc:
                error, status, code, headers, additional = exc, 0, "network", httpx.Headers(), {}

            self.stats.errors += 1
            if status in (429, 529) and additional.get("rate_limit_reason") == BLOCKED:
                raise AccountError(
                    f"Notion blocked this integration's requests ({status} {BLOCKED}); "
                    "ask Notion support to lift the block. Nothing is sent meanwhile"
                ) from None
            if status in (429, 529):
                self.stats.rate_limited += 1
                metrics.RATE_LIMITED.labels("notion").inc()
                waits += 1
                retry_after = _retry_after(headers) or self.backoff.delay(waits)
                if waits > self.max_rate_limit_waits:
                    raise RetryableError(
                        f"Notion kept answering 429 for {name}", retry_after=retry_after
                    ) from None
                log.info("notion_rate_limited", call=name, retry_after=retry_after)
                self.bucket.hold_off(retry_after)
                self.clock.sleep(retry_after)
                continue
            if status in (401, 403):
                raise AccountError(
                    f"Notion refused the integration token ({status} {code}): check NOTION_TOKEN "
                    "and that the databases are shared with the integration"
                ) from None
            if status == 404:
                raise NotFound(f"Notion {name}: {_message(error)}") from None
            if status == 400:
                raise PermanentError(f"Notion {name}: {_message(error)}") from None
            transient = status == 0 or status == 409 or status >= 500
            if not transient:
                raise PermanentError(f"Notion {name}: {status} {_message(error)}") from None
            if kind == "create":
                committed = additional.get("committed_resource_id")
                if committed:
                    return {"committed_resource_id": committed}
                raise MaybeWritten(
                    f"Notion {name} may or may not have been written ({_describe(status, code)})"
                ) from None
            retries += 1
            if retries > limit:
                raise RetryableError(
                    f"Notion {name} failed {retries} times ({_describe(status, code)})"
                ) from None
            delay = _retry_after(headers) or self.backoff.delay(retries)
            log.info("notion_retry", call=name, error=_describe(status, code), delay=delay)
            self.clock.sleep(delay)

    # Typed calls: each says once which endpoint, which kind of call (how it is retried) and
    # the name it is counted under (`call`, for NotionStats and the metrics).

    def query_data_source(
        self, data_source_id: str, *, call: str = "query", **body: Any
    ) -> dict[str, Any]:
        """One page of a data source query (`POST /v1/data_sources/{id}/query`)."""
        return self._dict(
            call, "read", lambda: self.client.data_sources.query(data_source_id, **body)
        )

    def create_page(
        self,
        data_source_id: str,
        properties: dict[str, Any],
        *,
        call: str = "create_page",
        children: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A new row in a data source (with a page body: `children`, at most 100 blocks). Its
        outcome may be unknown: MaybeWritten, or `{"committed_resource_id": ...}` when Notion
        names the page it saved anyway."""
        parent = {"type": "data_source_id", "data_source_id": data_source_id}
        extra = {"children": children} if children else {}
        return self._dict(
            call,
            "create",
            lambda: self.client.pages.create(parent=parent, properties=properties, **extra),
        )

    def update_page(
        self, page_id: str, properties: dict[str, Any], *, call: str = "update_page"
    ) -> dict[str, Any]:
        return self._dict(
            call,
            "update",
            lambda: self.client.pages.update(page_id=page_id, properties=properties),
        )

    def retrieve_page(self, page_id: str, *, call: str = "retrieve_page") -> dict[str, Any]:
        return self._dict(call, "read", lambda: self.client.pages.retrieve(page_id=page_id))

    def retrieve_database(
        self, database_id: str, *, max_retries: int | None = None
    ) -> dict[str, Any]:
        return self._dict(
            "retrieve_database",
            "read",
            lambda: self.client.databases.retrieve(database_id=database_id),
            max_retries=max_retries,
        )

    def create_database(
        self, parent_page_id: str, title: str, schema: dict[str, Any]
    ) -> dict[str, Any]:
        return self._dict(
            "create_database",
            "create",
            lambda: self.client.databases.create(
                parent={"type": "page_id", "page_id": parent_page_id},
                title=[{"type": "text", "text": {"content": title}}],
                is_inline=False,
                initial_data_source={"properties": schema},
            ),
        )

    def retrieve_data_source(self, data_source_id: str) -> dict[str, Any]:
        return self._dict(
            "retrieve_data_source",
            "read",
            lambda: self.client.data_sources.retrieve(data_source_id=data_source_id),
        )

    def update_data_source(self, data_source_id: str, properties: dict[str, Any]) -> dict[str, Any]:
        return self._dict(
            "update_data_source",
            "update",
            lambda: self.client.data_sources.update(
                data_source_id=data_source_id, properties=properties
            ),
        )

    def list_block_children(
        self, block_id: str, *, call: str = "list_children", **body: Any
    ) -> dict[str, Any]:
        """One page of a page's (or block's) children (`GET /v1/blocks/{id}/children`)."""
        return self._dict(
            call,
            "read",
            lambda: self.client.blocks.children.list(block_id=block_id, **body),
        )

    def append_block_children(
        self, block_id: str, children: list[dict[str, Any]], *, call: str = "append_children"
    ) -> dict[str, Any]:
        """Blocks added at the end of a page body (`PATCH /v1/blocks/{id}/children`, at most
        100). Not repeated after an unclear answer: that could add the blocks twice."""
        return self._dict(
            call,
            "create",
            lambda: self.client.blocks.children.append(block_id=block_id, children=children),
        )

    def delete_block(self, block_id: str, *, call: str = "delete_block") -> dict[str, Any]:
        """A block moved to the trash (`DELETE /v1/blocks/{id}`)."""
        return self._dict(call, "update", lambda: self.client.blocks.delete(block_id=block_id))

    def list_views(self, database_id: str, **body: Any) -> dict[str, Any]:
        return self._dict(
            "list_views",
            "read",
            lambda: self.client.views.list(database_id=database_id, **body),
        )

    def retrieve_view(self, view_id: str) -> dict[str, Any]:
        return self._dict(
            "retrieve_view", "read", lambda: self.client.views.retrieve(view_id=view_id)
        )

    def create_view(self, database_id: str, data_source_id: str, **view: Any) -> dict[str, Any]:
        return self._dict(
            "create_view",
            "create",
            lambda: self.client.views.create(
                database_id=database_id, data_source_id=data_source_id, **view
            ),
        )

    def _dict(
        self,
        name: str,
        kind: CallKind,
        fn: Callable[[], Any],
        *,
        max_retries: int | None = None,
    ) -> dict[str, Any]:
        """notion-client's synchronous calls answer the response's JSON object."""
        return cast(dict[str, Any], self.call(name, kind, fn, max_retries=max_retries))


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _describe(status: int, code: str) -> str:
    return "timeout or network error" if status == 0 else f"{status} {code}"


def _message(error: Exception) -> str:
    return str(error) or type(error).__name__

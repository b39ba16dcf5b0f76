"""An in-process emulator of Notion's HTTP API (Notion-Version 2025-09-03), for the subset a queue
worker uses, driven through the real notion-client.

It behaves like Notion where a client can tell: databases hold data sources, rows are pages whose
parent is a data source, every page shows every schema property (empty ones as null, [] or false),
rich text and dates come back normalised, page timestamps are cut to the minute, queries take
nested and/or filters and sorts and page through results with opaque cursors (in no particular
order without sorts), and bad input is a 400 validation_error worded as Notion words it. On top,
a token bucket answers 429 with Retry-After, and faults are injected per call kind: error codes,
HTML error pages, timeouts, an outage and writes that are committed and then reported as failed.

Use it in process (`transport()`, an httpx.MockTransport) or served on loopback (`serve()`).
The test helpers (`create_parent_page`, `edit_page`, `pages`, ...) bypass auth, rate limit and
faults and are not recorded in `requests`. A timed-out request is recorded with status 0.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from notion_queue.clock import Clock, SystemClock
from notion_queue.testing._http import TokenBucket, serve

__all__ = ["KINDS", "FakeNotion", "NotionError", "RecordedRequest"]

JSON_TYPE = "application/json; charset=utf-8"
BOT_USER_ID = "b0b0b0b0-0000-4000-8000-000000000001"
INTEGRATION = "Fake Notion"
ANNOTATIONS = {
    "bold": False,
    "italic": False,
    "strikethrough": False,
    "underline": False,
    "code": False,
    "color": "default",
}
COLOURS = ("default", "gray", "brown", "orange", "yellow", "green", "blue", "purple", "pink", "red")
TEXT = ("title", "rich_text")
STRINGS = {"email": 200, "url": 2000, "phone_number": 200}  # type → max length
LISTS = ("multi_select", "relation", "people", "files")
READ_ONLY: tuple[str, ...] = ("created_time", "last_edited_time", "created_by", "last_edited_by")
READ_ONLY += ("formula", "rollup", "unique_id")
PROPERTY_TYPES = (*TEXT, *STRINGS, "number", "select", "status", "date", "checkbox", *LISTS)
PROPERTY_TYPES += READ_ONLY
_ROUTES = [
    (method, re.compile(pattern), kind)
    for method, pattern, kind in (
        ("GET", r"/v1/databases/([^/]+)", "retrieve_database"),
        ("POST", r"/v1/databases", "create_database"),
        ("GET", r"/v1/data_sources/([^/]+)", "retrieve_data_source"),
        ("PATCH", r"/v1/data_sources/([^/]+)", "update_data_source"),
        ("POST", r"/v1/data_sources/([^/]+)/query", "query"),
        ("POST", r"/v1/pages", "create_page"),
        ("GET", r"/v1/pages/([^/]+)", "retrieve_page"),
        ("PATCH", r"/v1/pages/([^/]+)", "update_page"),
        ("GET", r"/v1/blocks/([^/]+)/children", "list_children"),
        ("PATCH", r"/v1/blocks/([^/]+)/children", "append_children"),
        ("DELETE", r"/v1/blocks/([^/]+)", "delete_block"),
        ("GET", r"/v1/views", "list_views"),
        ("POST", r"/v1/views", "create_view"),
        ("GET", r"/v1/views/([^/]+)", "retrieve_view"),
    )
]
KINDS = (*(kind for _, _, kind in _ROUTES), "other")  # RecordedRequest.kind
MESSAGES = {
    "internal_server_error": "Unexpected error occurred.",
    "bad_gateway": "Bad Gateway",
    "service_unavailable": "Notion is unavailable, please try again later.",
    "database_connection_unavailable": "Notion is unavailable, please try again later.",
    "gateway_timeout": "Gateway Timeout",
    "conflict_error": "Conflict occurred while saving. Please try again.",
    "rate_limited": "You have been rate limited. Please try again in a few minutes.",
    "service_overload": "Notion is overloaded, please try again later.",
}
TEXT_OPS = {"equals", "does_not_equal", "contains", "does_not_contain", "starts_with", "ends_with"}
EMPTY_OPS = {"is_empty", "is_not_empty"}
NUMBER_OPS = {"equals", "does_not_equal", "greater_than", "less_than"} | {
    "greater_than_or_equal_to",
    "less_than_or_equal_to",
}
DATE_OPS = {"equals", "before", "after", "on_or_before", "on_or_after"}
STATUS_DEFAULTS = [
    {"name": "Not started", "color": "default"},
    {"name": "In progress", "color": "blue"},
    {"name": "Done", "color": "green"},
]
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_PAGE_TITLE: dict[str, Any] = {
    "id": "title",
    "name": "title",
    "description": None,
    "type": "title",
    "title": {},
}

Predicate = Callable[["_Page"], bool]


class NotionError(Exception):
    """An error answer: raised inside the fake, sent as Notion's error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        additional: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.additional, self.headers = additional, headers or {}


def _invalid(message: str) -> NotionError:
    return NotionError(400, "validation_error", message)


def _length(value: str) -> int:
    """A string's length as Notion (JavaScript) counts it: UTF-16 code units, an emoji is two."""
    return len(value.encode("utf-16-le", "surrogatepass")) // 2


def _too_long(where: str, limit: int, actual: int) -> NotionError:
    return _invalid(
        f"body failed validation: {where}.length should be ≤ `{limit}`, instead was `{actual}`."
    )


@dataclass
class RecordedRequest:
    method: str
    path: str
    status: int  # 0: no answer (an injected timeout)
    kind: str
    at: float


@dataclass
class _Fault:
    kind: str | None
    status: int
    code: str
    times: int
    commit: bool
    timeout: bool
    html: bool
    retry_after: int | None
    rate_limit_reason: str | None = None  # a 429's additional_data.rate_limit_reason


@dataclass
class _RandomFaults:
    probability: float
    kinds: frozenset[str] | None
    statuses: list[tuple[int, str]]
    commit: float
    timeout: float


@dataclass
class _Database:
    id: str
    parent_page_id: str
    title: list[dict[str, Any]]
    is_inline: bool
    created: datetime
    data_source_ids: list[str] = field(default_factory=list)
    views: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _DataSource:
    id: str
    database_id: str
    title: list[dict[str, Any]]
    properties: dict[str, dict[str, Any]]  # property id → {id, name, description, type, <type>}
    created: datetime
    edited: datetime
    description: list[dict[str, Any]] = field(default_factory=list)
    in_trash: bool = False


@dataclass
class _Page:
    id: str
    parent: dict[str, Any]
    data_source_id: str | None  # None: a page under a page or the workspace (title only)
    created: datetime
    edited: datetime
    seq: int  # creation order, for created_time ties
    shuffle: float  # the "no particular order" of unsorted queries
    values: dict[str, Any] = field(default_factory=dict)  # property id → stored value
    edit_seq: int = 0
    in_trash: bool = False
    is_locked: bool = False
    icon: Any = None
    cover: Any = None


@dataclass
class _Block:
    """A block of a page body: `content` is the type's object without `children`."""

    id: str
    parent: dict[str, Any]
    type: str
    content: dict[str, Any]
    created: datetime
    edited: datetime
    in_trash: bool = False


# Block types the fake stores; the rich-text ones are validated and normalised like Notion's.
RICH_BLOCKS: dict[str, dict[str, Any]] = {
    "paragraph": {},
    "heading_1": {"is_toggleable": False},
    "heading_2": {"is_toggleable": False},
    "heading_3": {"is_toggleable": False},
    "bulleted_list_item": {},
    "numbered_list_item": {},
    "quote": {},
    "callout": {"icon": None},
    "toggle": {},
    "to_do": {"checked": False},
}
OTHER_BLOCKS = ("divider", "image", "bookmark", "table", "table_row", "code", "embed", "video")


@dataclass
class _Cursor:
    scope: str
    offset: int
    next_id: str


def _normalise_id(value: Any) -> str:
    """Dashed lowercase UUID for any spelling of one; anything else unchanged (it won't match)."""
    text = str(value)
    hexed = text.replace("-", "").lower()
    return str(uuid.UUID(hexed)) if re.fullmatch(r"[0-9a-f]{32}", hexed) else text


def _minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:00.000Z")


def _minute_instant(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _rich_text(content: str, link: str | None = None, annotations: Any = None) -> dict[str, Any]:
    return {
        "type": "text",
        "text": {"content": content, "link": {"url": link} if link else None},
        "annotations": {**ANNOTATIONS, **(annotations if isinstance(annotations, dict) else {})},
        "plain_text": content,
        "href": link,
    }


def _plain(items: Any) -> str:
    return "".join(item["plain_text"] for item in items or [])


def _start_instant(value: dict[str, Any]) -> datetime:
    """The absolute instant of a stored date value's start (date-only: 00:00 UTC)."""
    start = str(value["start"])
    if _DATE_ONLY.fullmatch(start):
        return datetime.combine(date.fromisoformat(start), datetime.min.time(), UTC)
    moment = datetime.fromisoformat(start)
    if moment.tzinfo is None:
        zone = value.get("time_zone")
        moment = moment.replace(tzinfo=ZoneInfo(zone) if zone else UTC)
    return moment


def _json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"Content-Type": JSON_TYPE, **(headers or {})},
        content=json.dumps(body, ensure_ascii=False).encode(),
    )


class FakeNotion:
    """Objects built for answers share state with the store: helpers hand out deep copies."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        token: str = "secret_fake",
        rate_limit: float | None = None,
        burst: float = 10,
        seed: int = 0,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.token = token
        self.rate_limit = rate_limit
        self._bucket = TokenBucket(self.clock, rate_limit, burst) if rate_limit else None
        self.seed = seed
        self.latency: tuple[float, float] | None = None
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._ids = random.Random(seed)  # object ids, property and option ids, colours
        self._request_ids = random.Random(seed + 1)
        self._fault_random = random.Random(seed + 2)
        self._latency_random = random.Random(seed + 3)
        self._databases: dict[str, _Database] = {}
        self._data_sources: dict[str, _DataSource] = {}
        self._pages: dict[str, _Page] = {}
        self._children: dict[str, list[str]] = {}  # page/block id → child ids, in order
        self._blocks: dict[str, _Block] = {}
        self._cursors: dict[str, _Cursor] = {}
        self._faults: list[_Fault] = []
        self._random_faults: _RandomFaults | None = None
        self.committed_faults = 0  # random faults that saved the write before failing
        self._down = False
        self._seq = 0

    # ---------------------------------------------------------------- transport and serving

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> AbstractContextManager[str]:
        def served(request: httpx.Request) -> httpx.Response:
            if self.latency is not None:
                time.sleep(self._latency_random.uniform(*self.latency))
            return self.handle(request)

        return serve(served, host, port)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """The whole API. Raises httpx.ConnectError while down and ReadTimeout for a timeout."""
        if self._down:
            raise httpx.ConnectError("FakeNotion is down (take_down)", request=request)
        request.read()
        path = "/" + "/".join(part for part in request.url.path.split("/") if part)
        kind, args = "other", tuple[str, ...]()
        for method, pattern, route_kind in _ROUTES:
            match = pattern.fullmatch(path)
            if match and request.method == method:
                kind, args = route_kind, match.groups()
                break
        with self._lock:
            response: httpx.Response | None
            try:
                response = self._answer(request, kind, args)
            except NotionError as exc:
                response = self._error(exc)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                response = self._error(_invalid(f"body failed validation: {exc!r}"))
            status = 0 if response is None else response.status_code
            self.requests.append(
                RecordedRequest(request.method, path, status, kind, self.clock.monotonic())
            )
        if response is None:
            raise httpx.ReadTimeout("FakeNotion: injected timeout", request=request)
        return response

    def _answer(
        self, request: httpx.Request, kind: str, args: Sequence[str]
    ) -> httpx.Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            raise NotionError(401, "unauthorized", "API token is invalid.")
        if not request.headers.get("notion-version"):
            raise NotionError(
                400,
                "missing_version",
                "Notion-Version header failed validation: Notion-Version header should be "
                "defined, instead was `undefined`.",
            )
        if self._bucket is not None and (wait := self._bucket.take()) > 0:
            retry_after = self._bucket.retry_after_header(wait)
            raise NotionError(
                429,
                "rate_limited",
                MESSAGES["rate_limited"],
                {"rate_limit_reason": "public_api_request_rate_limit", "retry_after": retry_after},
                {"Retry-After": retry_after},
            )
        fault = self._draw_fault(kind)
        if fault is not None and not fault.commit:
            return self._fault_answer(fault, None)
        result = self._route(kind, args, request)
        if fault is not None:
            return self._fault_answer(fault, result)
        return _json_response(200, {**result, "request_id": self._request_id()})

    def _route(self, kind: str, args: Sequence[str], request: httpx.Request) -> dict[str, Any]:
        if kind == "other":
            raise NotionError(400, "invalid_request_url", "Invalid request URL.")
        body = self._body(request) if request.method in ("POST", "PATCH") else {}
        params = request.url.params
        if kind == "retrieve_database":
            return self._database_object(self._database(args[0]))
        if kind == "create_database":
            return self._database_object(self._create_database(body))
        if kind == "retrieve_data_source":
            return self._data_source_object(self._data_source(args[0]))
        if kind == "update_data_source":
            return self._data_source_object(self._update_data_source(args[0], body))
        if kind == "query":
            return self._query(args[0], body)
        if kind == "create_page":
            return self._page_object(self._create_page(body))
        if kind == "retrieve_page":
            return self._page_object(self._page(args[0]))
        if kind == "update_page":
            return self._page_object(self._update_page(args[0], body))
        if kind == "list_children":
            return self._list_children(args[0], params)
        if kind == "append_children":
            return self._append_children(args[0], body)
        if kind == "delete_block":
            return self._delete_block(args[0])
        if kind == "list_views":
            return self._list_views(params)
        if kind == "retrieve_view":
            return self._view(args[0])
        return self._create_view(body)

    def _body(self, request: httpx.Request) -> dict[str, Any]:
        if len(request.content) > 500_000:
            raise _too_long("body", 500_000, len(request.content))
        if not request.content.strip():
            return {}
        try:
            body = json.loads(request.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise NotionError(400, "invalid_json", "Error parsing JSON body.") from None
        if not isinstance(body, dict):
            raise _invalid("body failed validation: body should be an object.")
        return body

    def _request_id(self) -> str:
        return str(uuid.UUID(int=self._request_ids.getrandbits(128), version=4))

    def _error(self, exc: NotionError) -> httpx.Response:
        body: dict[str, Any] = {
            "object": "error",
            "status": exc.status,
            "code": exc.code,
            "message": exc.message,
            "request_id": self._request_id(),
        }
        if exc.additional:
            body["additional_data"] = exc.additional
        return _json_response(exc.status, body, exc.headers)

    # ---------------------------------------------------------------- faults

    def fail_next(
        self,
        kind: str | None = None,
        *,
        status: int = 500,
        code: str = "internal_server_error",
        times: int = 1,
        commit: bool = False,
        timeout: bool = False,
        html: bool = False,
        retry_after: int | None = None,
        rate_limit_reason: str | None = None,
    ) -> None:
        """The next `times` API requests of `kind` (None: any) fail (see the module docstring).
        A 429 names its `rate_limit_reason` (default: the per-connection limit)."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown request kind {kind!r}; one of {KINDS}")
        with self._lock:
            self._faults.append(
                _Fault(
                    kind, status, code, times, commit, timeout, html, retry_after, rate_limit_reason
                )
            )

    def random_faults(
        self,
        probability: float,
        *,
        kinds: Iterable[str] | None = None,
        statuses: Sequence[tuple[int, str]] = (
            (500, "internal_server_error"),
            (502, "bad_gateway"),
            (503, "service_unavailable"),
            (429, "rate_limited"),
        ),
        commit_probability: float = 0.0,
        timeout_probability: float = 0.0,
    ) -> None:
        """Each request fails with `probability` (seeded); a failure is a timeout with
        `timeout_probability` and is applied before failing with `commit_probability`."""
        chosen = frozenset(kinds) if kinds is not None else None
        if chosen is not None and not chosen <= set(KINDS):
            raise ValueError(f"unknown request kinds {sorted(chosen - set(KINDS))}")
        with self._lock:
            self._random_faults = (
                _RandomFaults(
                    probability, chosen, list(statuses), commit_probability, timeout_probability
                )
                if probability > 0
                else None
            )

    def take_down(self) -> None:
        self._down = True

    def bring_up(self) -> None:
        self._down = False

    def _draw_fault(self, kind: str) -> _Fault | None:
        for fault in self._faults:
            if fault.kind in (None, kind):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        plan, rng = self._random_faults, self._fault_random
        if plan is None or (plan.kinds is not None and kind not in plan.kinds):
            return None
        if rng.random() >= plan.probability:
            return None
        status, code = rng.choice(plan.statuses)
        # Notion rate-limits before it does any work: a 429 never comes after a saved write.
        commit = status != 429 and rng.random() < plan.commit
        timeout = rng.random() < plan.timeout
        if commit:
            self.committed_faults += 1
        return _Fault(kind, status, code, 1, commit, timeout, False, 1 if status == 429 else None)

    def _fault_answer(
        self, fault: _Fault, committed: dict[str, Any] | None
    ) -> httpx.Response | None:
        if fault.timeout:
            return None
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.html:
            reason = httpx.codes.get_reason_phrase(fault.status) or "Error"
            page = (
                f"<html>\r\n<head><title>{fault.status} {reason}</title></head>\r\n<body>\r\n"
                f"<center><h1>{fault.status} {reason}</h1></center>\r\n"
                "<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
            )
            return httpx.Response(
                fault.status, headers={"Content-Type": "text/html", **headers}, content=page
            )
        additional: dict[str, Any] = {}
        if fault.status == 429:
            additional["rate_limit_reason"] = (
                fault.rate_limit_reason or "public_api_request_rate_limit"
            )
            if fault.retry_after is not None:
                additional["retry_after"] = str(fault.retry_after)
        if committed is not None and fault.status == 503:
            additional["retry_guidance"] = [
                "Read the object again to check whether the write was saved",
                "Do not repeat the write",
            ]
            if committed.get("object") in ("page", "database"):
                additional["committed_resource_id"] = committed["id"]
        message = MESSAGES.get(fault.code, fault.code.replace("_", " ").capitalize() + ".")
        return self._error(NotionError(fault.status, fault.code, message, additional, headers))

    # ---------------------------------------------------------------- test helpers

    def create_parent_page(self, title: str = "Parent") -> str:
        """A workspace-level page that databases (and pages) can be created under."""
        with self._lock:
            page = self._new_page({"type": "workspace", "workspace": True}, None)
            page.values["title"] = [_rich_text(title)]
            self._pages[page.id] = page
            return page.id

    def create_database(
        self, parent_page_id: str, title: str, properties: dict[str, Any]
    ) -> tuple[str, str]:
        """As POST /v1/databases with `properties` as initial_data_source.properties."""
        with self._lock:
            db = self._create_database(
                {
                    "parent": {"type": "page_id", "page_id": parent_page_id},
                    "title": [{"text": {"content": title}}],
                    "initial_data_source": {"properties": properties},
                }
            )
            return db.id, db.data_source_ids[0]

    def copy_page(self, page_id: str, copies: int) -> list[str]:
        """`copies` new pages with the page's parent and properties, made without requests (a
        long history, quickly); the copies are created after it, in order."""
        with self._lock:
            original = self._page(page_id)
            made = []
            for _ in range(copies):
                page = self._new_page(deepcopy(original.parent), original.data_source_id)
                page.values = dict(original.values)  # a write replaces a value, never edits it
                self._pages[page.id] = page
                made.append(page.id)
            return made

    def page(self, page_id: str) -> dict[str, Any]:
        with self._lock:
            return deepcopy(self._page_object(self._page(page_id)))

    def pages(self, data_source_id: str, include_trashed: bool = False) -> list[dict[str, Any]]:
        """Every page of a data source, in creation order."""
        with self._lock:
            ds = self._data_source(data_source_id)
            return [
                deepcopy(self._page_object(page))
                for page in self._pages.values()
                if page.data_source_id == ds.id and (include_trashed or not page.in_trash)
            ]

    def edit_page(self, page_id: str, properties: dict[str, Any]) -> None:
        """A marketer's edit in the Notion UI: PATCH's value format and validation."""
        with self._lock:
            self._update_page(page_id, {"properties": properties})

    def trash_page(self, page_id: str, in_trash: bool = True) -> None:
        """A marketer deleting (or restoring) a row in the Notion UI."""
        with self._lock:
            self._update_page(page_id, {"in_trash": in_trash})

    def blocks(self, page_id: str) -> list[dict[str, Any]]:
        """A page body as a tree: each block as the API answers it, its children (if any)
        under `block[type]["children"]`."""
        with self._lock:
            return self._tree(self._container(page_id))

    def _tree(self, parent_id: str) -> list[dict[str, Any]]:
        tree = []
        for child_id in self._children.get(parent_id, []):
            block = self._blocks.get(child_id)
            if block is None or block.in_trash:
                continue
            shown = deepcopy(self._block_object(block))
            if shown["has_children"]:
                shown[block.type]["children"] = self._tree(block.id)
            tree.append(shown)
        return tree

    def edit_block(self, block_id: str, content: dict[str, Any]) -> None:
        """A marketer editing a block's text in the Notion UI (`content`: the type's object, in
        the write format); the page's last_edited_time moves."""
        with self._lock:
            block = self._blocks[_normalise_id(block_id)]
            block.content = self._block_content(block.type, content, "block")
            self._touch(block.id)

    def views(self, database_id: str) -> list[dict[str, Any]]:
        """Every view of a database, as retrieve-view answers it, in creation order."""
        with self._lock:
            return deepcopy(self._database(database_id).views)

    def delete_view(self, view_id: str) -> None:
        """A marketer deleting a view in the Notion UI."""
        with self._lock:
            view = self._view(view_id)
            self._database(view["parent"]["database_id"]).views.remove(view)

    def data_source(self, data_source_id: str) -> dict[str, Any]:
        with self._lock:
            return deepcopy(self._data_source_object(self._data_source(data_source_id)))

    def count(self, kind: str | None = None, status: int | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (kind is None or r.kind == kind) and (status is None or r.status == status)
            )

    # ---------------------------------------------------------------- lookups and ids

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _short_id(self, taken: Iterable[str], *, encoded: bool) -> str:
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:;<=>?@[]^_`{|}~"
        used = set(taken)
        while True:
            raw = "".join(self._ids.choice(alphabet) for _ in range(4))
            short = quote(raw, safe="") if encoded else raw
            if short not in used and short != "title":
                return short

    def _not_found(self, what: str, object_id: str) -> NotionError:
        return NotionError(
            404,
            "object_not_found",
            f"Could not find {what} with ID: {_normalise_id(object_id)}. Make sure the relevant "
            f'pages and databases are shared with your integration "{INTEGRATION}".',
            {"integration_id": BOT_USER_ID},
        )

    def _database(self, database_id: Any) -> _Database:
        db = self._databases.get(_normalise_id(database_id))
        if db is None:
            raise self._not_found("database", str(database_id))
        return db

    def _data_source(self, data_source_id: Any) -> _DataSource:
        ds = self._data_sources.get(_normalise_id(data_source_id))
        if ds is None:
            raise self._not_found("data_source", str(data_source_id))
        return ds

    def _page(self, page_id: Any) -> _Page:
        page = self._pages.get(_normalise_id(page_id))
        if page is None:
            raise self._not_found("page", str(page_id))
        return page

    def _schema(self, page: _Page) -> dict[str, dict[str, Any]]:
        if page.data_source_id is None:
            return {"title": _PAGE_TITLE}
        return self._data_sources[page.data_source_id].properties

    @staticmethod
    def _find(schema: dict[str, dict[str, Any]], key: Any) -> dict[str, Any] | None:
        """A property by name (case-sensitive) or by id (URL-encoded or not)."""
        for prop in schema.values():
            if prop["name"] == key:
                return prop
        for prop in schema.values():
            if key in (prop["id"], unquote(prop["id"])):
                return prop
        return None

    # ---------------------------------------------------------------- rich text and values

    def _rich_text_input(self, where: str, raw: Any) -> list[dict[str, Any]]:
        if not isinstance(raw, list):
            raise _invalid(f"body failed validation: {where} should be an array.")
        if len(raw) > 100:
            raise _too_long(where, 100, len(raw))
        items = []
        for i, item in enumerate(raw):
            text = item.get("text") if isinstance(item, dict) else None
            if not isinstance(text, dict) or not isinstance(text.get("content"), str):
                raise _invalid(
                    f"body failed validation: {where}[{i}].text should be defined, instead was "
                    "`undefined`."
                )
            content, link = text["content"], text.get("link")
            url = link.get("url") if isinstance(link, dict) else None
            if _length(content) > 2000:
                raise _too_long(f"{where}[{i}].text.content", 2000, _length(content))
            if url is not None and (not isinstance(url, str) or _length(url) > 2000):
                raise _too_long(f"{where}[{i}].text.link.url", 2000, _length(str(url)))
            items.append(_rich_text(content, url, item.get("annotations")))
        return items

    def _coerce(self, prop: dict[str, Any], value: Any, where: str) -> Any:
        """A write value (PATCH/POST format) → the stored value; raises Notion's 400s."""
        name, kind = prop["name"], prop["type"]
        here = f"{where}.{name}.{kind}"
        if kind in READ_ONLY:
            raise _invalid(
                "body failed validation. Fix one:\n"
                + "\n".join(
                    f"{where}.{name}.{alt} should be defined, instead was `undefined`."
                    for alt in ("title", "rich_text", "number", "select", "date", "checkbox")
                )
            )
        if isinstance(value, list) and kind in TEXT:
            value = {kind: value}  # the bare rich-text array shorthand
        if not isinstance(value, dict) or kind not in value or value.get("type", kind) != kind:
            raise _invalid(f"{name} is expected to be {kind}.")
        raw = value[kind]
        if kind in TEXT:
            if not isinstance(raw, list):
                raise _invalid(f"{name} is expected to be {kind}.")
            return self._rich_text_input(here, raw)
        if kind in STRINGS:
            if raw is not None and not isinstance(raw, str):
                raise _invalid(f"{name} is expected to be {kind}.")
            if raw is not None and _length(raw) > STRINGS[kind]:
                raise _too_long(here, STRINGS[kind], _length(raw))
            return raw or None
        if kind == "number":
            if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int | float)):
                raise _invalid(f"{name} is expected to be number.")
            return raw
        if kind == "checkbox":
            if not isinstance(raw, bool):
                raise _invalid(f"{name} is expected to be checkbox.")
            return raw
        if kind == "date":
            return None if raw is None else self._date_input(name, here, raw)
        if kind in ("select", "status"):
            return None if raw is None else self._option_id(prop, raw)
        if not isinstance(raw, list):
            raise _invalid(f"{name} is expected to be {kind}.")
        if len(raw) > 100:
            raise _too_long(here, 100, len(raw))
        if kind == "multi_select":
            return list(dict.fromkeys(self._option_id(prop, item) for item in raw))
        if kind == "relation":
            ids = []
            for item in raw:
                related = _normalise_id(item.get("id") if isinstance(item, dict) else None)
                if not re.fullmatch(r"[0-9a-f-]{36}", related):
                    raise _invalid(f"{name} is expected to be relation.")
                ids.append(related)
            return list(dict.fromkeys(ids))
        return deepcopy(raw)  # people, files: kept as sent

    def _option_id(self, prop: dict[str, Any], raw: Any) -> str:
        name, kind = prop["name"], prop["type"]
        options: list[dict[str, Any]] = prop[kind]["options"]
        if not isinstance(raw, dict) or not ("id" in raw or isinstance(raw.get("name"), str)):
            raise _invalid(f"{name} is expected to be {kind}.")
        for option in options:
            if option["id"] == raw.get("id") or option["name"] == raw.get("name"):
                return str(option["id"])
        if "name" not in raw:
            raise _invalid(f"Invalid {kind} option id for {name}: {raw.get('id')}.")
        if kind == "status":
            raise _invalid(f'Invalid status option. Status option "{raw["name"]}" does not exist.')
        option = self._new_option({"name": raw["name"]}, options)
        options.append(option)
        return str(option["id"])

    def _new_option(self, raw: Any, others: list[dict[str, Any]]) -> dict[str, Any]:
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise _invalid("body failed validation: an option name should be a non-empty string.")
        if "," in name:
            raise _invalid(f"Invalid select option, commas not allowed: {name}")
        if any(o["name"] == name for o in others):
            raise _invalid(f"Duplicate option name: {name}.")
        colour = raw.get("color") or self._ids.choice(COLOURS[1:])
        if colour not in COLOURS:
            raise _invalid(f"body failed validation: option color `{colour}` is not a color.")
        return {
            "id": self._short_id((o["id"] for o in others), encoded=False),
            "name": name,
            "color": colour,
            "description": raw.get("description"),
        }

    def _date_input(self, name: str, here: str, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict) or not isinstance(raw.get("start"), str):
            raise _invalid(f"{name} is expected to be date.")
        zone = raw.get("time_zone")
        if zone is not None:
            try:
                ZoneInfo(str(zone))
            except (ZoneInfoNotFoundError, ValueError):
                raise _invalid(
                    f"body failed validation: {here}.time_zone `{zone}` is not a time zone."
                ) from None

        def normalise(field_name: str, text: Any) -> str | None:
            if text is None and field_name == "end":
                return None
            if not isinstance(text, str):
                raise _invalid(f"{name} is expected to be date.")
            if _DATE_ONLY.fullmatch(text):
                if zone is not None:
                    raise _invalid(f"{here}.{field_name}: a date with a time_zone needs a time.")
                date.fromisoformat(text)
                return text
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise _invalid(
                    f"body failed validation: {here}.{field_name} should be a valid ISO 8601 date "
                    f"string, instead was `{json.dumps(text)}`."
                ) from None
            if zone is not None and moment.tzinfo is not None:
                raise _invalid(
                    f"{here}.{field_name}: a date with a time_zone can't have a UTC offset."
                )
            if zone is None and moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.isoformat(timespec="milliseconds")

        return {
            "start": normalise("start", raw["start"]),
            "end": normalise("end", raw.get("end")),
            "time_zone": zone,
        }

    def _read_value(self, prop: dict[str, Any], page: _Page) -> Any:
        """The read form of one property of a page (without id and type)."""
        kind, stored = prop["type"], page.values.get(prop["id"])
        if kind == "created_time":
            return _minute(page.created)
        if kind == "last_edited_time":
            return _minute(page.edited)
        if kind in ("created_by", "last_edited_by"):
            return {"object": "user", "id": BOT_USER_ID}
        if kind in ("select", "status", "multi_select"):
            by_id = {o["id"]: o for o in prop[kind]["options"]}
            chosen = [
                {k: by_id[i][k] for k in ("id", "name", "color")}
                for i in (stored or [] if kind == "multi_select" else [stored])
                if i in by_id
            ]
            return chosen if kind == "multi_select" else (chosen[0] if chosen else None)
        if kind == "relation":
            return [{"id": i} for i in stored or []]
        if kind == "checkbox":
            return bool(stored)
        if stored is None and (kind in TEXT or kind in LISTS):
            return []
        return stored

    def _compare_value(self, prop: dict[str, Any], page: _Page) -> Any:
        """What filters and sorts look at: text, number, bool, names, instant or ids."""
        kind, stored = prop["type"], page.values.get(prop["id"])
        if kind in TEXT:
            return _plain(stored)
        if kind in ("created_time", "last_edited_time"):
            return _minute_instant(page.created if kind == "created_time" else page.edited)
        if kind == "date":
            return _start_instant(stored) if stored else None
        if kind in ("select", "status", "multi_select"):
            names = {o["id"]: o["name"] for o in prop[kind]["options"]}
            if kind == "multi_select":
                return [names[i] for i in stored or [] if i in names]
            return names.get(stored)
        if kind == "checkbox":
            return bool(stored)
        if kind in LISTS:
            return list(stored or [])
        return stored

    # ---------------------------------------------------------------- databases, data sources

    def _property_config(
        self, kind: str, raw: Any, old: dict[str, Any] | None, where: str
    ) -> dict[str, Any]:
        raw = raw or {}
        if not isinstance(raw, dict):
            raise _invalid(f"body failed validation: {where}.{kind} should be an object.")
        if kind in ("select", "multi_select"):
            options: list[dict[str, Any]] = []
            previous = old["options"] if old else []
            for item in raw.get("options") or []:
                match = next(
                    (o for o in previous if isinstance(item, dict) and item.get("id") == o["id"]),
                    None,
                ) or next((o for o in previous if o["name"] == item.get("name")), None)
                if match is not None:  # an existing option: keep its id, allow a new colour
                    kept = {**match, **{k: item[k] for k in ("name", "color") if k in item}}
                    options.append(self._new_option(kept, options) | {"id": match["id"]})
                else:
                    options.append(self._new_option(item, [*options, *previous]))
            return {"options": options}
        if kind == "status":  # options can be added (to To-do), never renamed or removed
            groups = (("To-do", "gray"), ("In progress", "blue"), ("Complete", "green"))
            config = deepcopy(old) or {
                "options": [],
                "groups": [
                    {
                        "id": self._short_id((), encoded=False),
                        "name": g,
                        "color": c,
                        "option_ids": [],
                    }
                    for g, c in groups
                ],
            }
            for item in raw.get("options") or ([] if old else STATUS_DEFAULTS):
                if not any(o["name"] == item.get("name") for o in config["options"]):
                    option = self._new_option({"color": "default", **item}, config["options"])
                    config["options"].append(option)
                    group = {"In progress": 1, "Done": 2}.get(option["name"], 0)
                    config["groups"][group]["option_ids"].append(option["id"])
            return config
        if kind == "number":
            return {"format": str(raw.get("format", "number"))}
        if kind == "relation":
            if raw.get("data_source_id"):
                target = self._data_source(raw["data_source_id"])
            elif raw.get("database_id"):
                target = self._data_sources[self._database(raw["database_id"]).data_source_ids[0]]
            else:
                raise _invalid(
                    f"body failed validation: {where}.relation.data_source_id should be defined, "
                    "instead was `undefined`."
                )
            style = raw.get("type", "single_property")
            if style not in ("single_property", "dual_property"):
                raise _invalid(f"body failed validation: {where}.relation.type is invalid.")
            return {
                "database_id": target.database_id,
                "data_source_id": target.id,
                "type": style,
                style: {},
            }
        return {}

    def _new_property(
        self, schema: dict[str, dict[str, Any]], name: Any, config: Any, where: str
    ) -> dict[str, Any]:
        if not isinstance(name, str) or not name.strip():
            raise _invalid(f"body failed validation: {where}.name should be a non-empty string.")
        if any(p["name"] == name for p in schema.values()):
            raise _invalid(f"A property named {name} already exists.")
        if not isinstance(config, dict):
            raise _invalid(f"body failed validation: {where} should be an object.")
        kinds = [k for k in config if k in PROPERTY_TYPES]
        kind = config.get("type") or (kinds[0] if len(kinds) == 1 else None)
        if kind not in PROPERTY_TYPES:
            raise _invalid(
                f"body failed validation: {where} should have exactly one property type."
            )
        if kind == "title" and any(p["type"] == "title" for p in schema.values()):
            raise _invalid("A data source must have exactly one title property.")
        return {
            "id": "title" if kind == "title" else self._short_id(schema, encoded=True),
            "name": name,
            "description": config.get("description"),
            "type": kind,
            kind: self._property_config(kind, config.get(kind), None, where),
        }

    @staticmethod
    def _check_one_title(schema: dict[str, dict[str, Any]]) -> None:
        if sum(p["type"] == "title" for p in schema.values()) != 1:
            raise _invalid("A data source must have exactly one title property.")

    def _create_database(self, body: dict[str, Any]) -> _Database:
        parent = body.get("parent")
        if not isinstance(parent, dict):
            raise _invalid(
                "body failed validation: body.parent should be defined, instead was `undefined`."
            )
        if "page_id" not in parent:
            raise _invalid(
                "body failed validation: body.parent.page_id should be defined, instead was "
                "`undefined`."
            )
        parent_page = self._page(parent["page_id"])
        title = self._rich_text_input("body.title", body.get("title") or [])
        initial = body.get("initial_data_source") or {}
        wanted = initial.get("properties") or {"Name": {"title": {}}}
        if not isinstance(wanted, dict):
            raise _invalid(
                "body failed validation: body.initial_data_source.properties should be an object."
            )
        schema: dict[str, dict[str, Any]] = {}
        for name, config in wanted.items():
            prop = self._new_property(
                schema, name, config, f"body.initial_data_source.properties.{name}"
            )
            schema[prop["id"]] = prop
        self._check_one_title(schema)
        now = self.clock.now()
        db = _Database(self._new_id(), parent_page.id, title, bool(body.get("is_inline")), now)
        ds = _DataSource(self._new_id(), db.id, deepcopy(title), schema, now, now)
        db.data_source_ids.append(ds.id)
        self._databases[db.id] = db
        self._data_sources[ds.id] = ds
        self._children.setdefault(parent_page.id, []).append(db.id)
        return db

    def _update_data_source(self, data_source_id: str, body: dict[str, Any]) -> _DataSource:
        ds = self._data_source(data_source_id)
        changes = body.get("properties")
        if changes is not None and not isinstance(changes, dict):
            raise _invalid("body failed validation: body.properties should be an object.")
        schema = deepcopy(ds.properties)
        cleared: set[str] = set()  # property ids whose page values go
        for key, change in (changes or {}).items():
            where = f"body.properties.{key}"
            prop = self._find(schema, key)
            if change is None:
                if prop is None:
                    raise _invalid(f"{key} is not a property that exists.")
                del schema[prop["id"]]
                cleared.add(prop["id"])
                continue
            if not isinstance(change, dict):
                raise _invalid(f"body failed validation: {where} should be an object or `null`.")
            if prop is None:
                prop = self._new_property(schema, change.get("name") or key, change, where)
                schema[prop["id"]] = prop
                continue
            new_name = change.get("name")
            if new_name is not None and new_name != prop["name"]:
                if not isinstance(new_name, str) or not new_name.strip():
                    raise _invalid(f"body failed validation: {where}.name should be a string.")
                if any(p["name"] == new_name for p in schema.values()):
                    raise _invalid(f"A property named {new_name} already exists.")
                prop["name"] = new_name
            if "description" in change:
                prop["description"] = change["description"]
            kinds = [k for k in change if k in PROPERTY_TYPES]
            kind = change.get("type") or (kinds[0] if kinds else None)
            if kind is None:
                continue
            if kind not in PROPERTY_TYPES:
                raise _invalid(f"body failed validation: {where}.type `{kind}` is not a type.")
            old_kind = prop["type"]
            if kind == old_kind:
                prop[kind] = self._property_config(kind, change.get(kind), prop[kind], where)
            elif "title" in (kind, old_kind):
                raise _invalid("A data source must have exactly one title property.")
            else:  # a type change: values don't carry over
                del prop[old_kind]
                prop["type"], prop[kind] = (
                    kind,
                    self._property_config(kind, change.get(kind), None, where),
                )
                cleared.add(prop["id"])
        self._check_one_title(schema)
        title = description = None
        if body.get("title") is not None:
            title = self._rich_text_input("body.title", body["title"])
        if body.get("description") is not None:
            description = self._rich_text_input("body.description", body["description"])
        ds.properties = schema
        ds.title = title if title is not None else ds.title
        ds.description = description if description is not None else ds.description
        trash = body.get("in_trash", body.get("archived"))
        if trash is not None:
            ds.in_trash = bool(trash)
        for page in self._pages.values():
            if page.data_source_id == ds.id:
                for prop_id in cleared:
                    page.values.pop(prop_id, None)
        ds.edited = self.clock.now()
        return ds

    def _database_object(self, db: _Database) -> dict[str, Any]:
        stamp = db.created.astimezone(UTC).isoformat(timespec="milliseconds")
        return {
            "object": "database",
            "id": db.id,
            "title": db.title,
            "description": [],
            "parent": {"type": "page_id", "page_id": db.parent_page_id},
            "is_inline": db.is_inline,
            "in_trash": False,
            "is_locked": False,
            "created_time": stamp,
            "last_edited_time": stamp,
            "data_sources": [
                {"id": ds_id, "name": _plain(self._data_sources[ds_id].title)}
                for ds_id in db.data_source_ids
            ],
            "icon": None,
            "cover": None,
            "url": f"https://app.notion.com/p/{db.id.replace('-', '')}",
            "public_url": None,
            "archived": False,
        }

    def _data_source_object(self, ds: _DataSource) -> dict[str, Any]:
        db = self._databases[ds.database_id]
        return {
            "object": "data_source",
            "id": ds.id,
            "cover": None,
            "icon": None,
            "created_time": _minute(ds.created),
            "created_by": {"object": "user", "id": BOT_USER_ID},
            "last_edited_by": {"object": "user", "id": BOT_USER_ID},
            "last_edited_time": _minute(ds.edited),
            "title": ds.title,
            "description": ds.description,
            "is_inline": db.is_inline,
            "properties": {p["name"]: p for p in ds.properties.values()},
            "parent": {"type": "database_id", "database_id": db.id},
            "database_parent": {"type": "page_id", "page_id": db.parent_page_id},
            "url": f"https://app.notion.com/p/{db.id.replace('-', '')}",
            "public_url": None,
            "in_trash": ds.in_trash,
            "archived": ds.in_trash,
        }

    # ---------------------------------------------------------------- pages

    def _new_page(self, parent: dict[str, Any], data_source_id: str | None) -> _Page:
        now = self.clock.now()
        self._seq += 1
        return _Page(
            self._new_id(), parent, data_source_id, now, now, self._seq, self._ids.random()
        )

    def _write(self, page: _Page, properties: Any, where: str) -> None:
        """Validate every value first, then apply them all (and any new select options)."""
        if not isinstance(properties, dict):
            raise _invalid(f"body failed validation: {where} should be an object.")
        schema = {  # copy-on-write: only option lists can grow while writing
            pid: {**p, p["type"]: {**p[p["type"]], "options": list(p[p["type"]]["options"])}}
            if p["type"] in ("select", "multi_select")
            else p
            for pid, p in self._schema(page).items()
        }
        staged = dict(page.values)
        for key, value in properties.items():
            prop = self._find(schema, key)
            if prop is None:
                raise _invalid(f"{key} is not a property that exists.")
            staged[prop["id"]] = self._coerce(prop, value, where)
        if page.data_source_id is not None:
            self._data_sources[page.data_source_id].properties = schema
        page.values = staged

    def _create_page(self, body: dict[str, Any]) -> _Page:
        parent = body.get("parent")
        if not isinstance(parent, dict):
            raise _invalid(
                "body failed validation: body.parent should be defined, instead was `undefined`."
            )
        ds: _DataSource | None = None
        if "data_source_id" in parent:
            ds = self._data_source(parent["data_source_id"])
        elif "database_id" in parent:
            db = self._database(parent["database_id"])
            if len(db.data_source_ids) != 1:
                raise _invalid(
                    "Databases with multiple data sources are not supported in this API version; "
                    "use a data_source_id parent."
                )
            ds = self._data_sources[db.data_source_ids[0]]
        elif "page_id" in parent:
            under = self._page(parent["page_id"])
            page_parent: dict[str, Any] = {"type": "page_id", "page_id": under.id}
        elif parent.get("workspace") is True:
            page_parent = {"type": "workspace", "workspace": True}
        else:
            raise _invalid(
                "body failed validation: body.parent.data_source_id should be defined, instead "
                "was `undefined`."
            )
        if ds is not None:
            page_parent = {
                "type": "data_source_id",
                "data_source_id": ds.id,
                "database_id": ds.database_id,
            }
        page = self._new_page(page_parent, ds.id if ds else None)
        self._write(page, body.get("properties") or {}, "body.properties")
        page.icon, page.cover = deepcopy(body.get("icon")), deepcopy(body.get("cover"))
        children = self._block_inputs(body.get("children"), "body.children", 0)
        self._pages[page.id] = page
        if page_parent["type"] == "page_id":
            self._children.setdefault(page_parent["page_id"], []).append(page.id)
        self._add_blocks(page.id, children)
        return page

    def _update_page(self, page_id: str, body: dict[str, Any]) -> _Page:
        page = self._page(page_id)
        trash = body.get("in_trash", body.get("archived"))
        if trash is not None and not isinstance(trash, bool):
            raise _invalid("body failed validation: body.in_trash should be a boolean.")
        if page.in_trash and trash is not False:
            raise _invalid(
                "Can't edit block that is archived. You must unarchive the block before editing."
            )
        self._write(page, body.get("properties") or {}, "body.properties")
        if trash is not None:
            page.in_trash = trash
        if isinstance(body.get("is_locked"), bool):
            page.is_locked = body["is_locked"]
        for key in ("icon", "cover"):
            if key in body:
                setattr(page, key, deepcopy(body[key]))
        self._seq += 1
        page.edited, page.edit_seq = self.clock.now(), self._seq
        return page

    def _page_object(self, page: _Page) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        title = ""
        for prop in self._schema(page).values():
            kind = prop["type"]
            entry = {"id": prop["id"], "type": kind, kind: self._read_value(prop, page)}
            if kind == "relation":
                entry["has_more"] = False
            if kind == "title":
                title = _plain(entry["title"])
            properties[prop["name"]] = entry
        slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")
        return {
            "object": "page",
            "id": page.id,
            "created_time": _minute(page.created),
            "last_edited_time": _minute(page.edited),
            "created_by": {"object": "user", "id": BOT_USER_ID},
            "last_edited_by": {"object": "user", "id": BOT_USER_ID},
            "cover": page.cover,
            "icon": page.icon,
            "parent": dict(page.parent),
            "in_trash": page.in_trash,
            "is_archived": False,
            "is_locked": page.is_locked,
            "properties": properties,
            "url": f"https://app.notion.com/p/{slug + '-' if slug else ''}"
            + page.id.replace("-", ""),
            "public_url": None,
            "archived": page.in_trash,
        }

    # ---------------------------------------------------------------- lists and pagination

    def _page_size(self, raw: Any, where: str) -> int:
        if raw is None:
            return 100
        try:
            size = int(raw) if isinstance(raw, str) else raw
        except ValueError:
            size = None
        if not isinstance(size, int) or isinstance(size, bool):
            raise _invalid(f"body failed validation: {where} should be a number.")
        if size > 100:
            raise _invalid(
                f"body failed validation: {where} should be ≤ `100`, instead was `{size}`."
            )
        if size < 1:
            raise _invalid(
                f"body failed validation: {where} should be ≥ `1`, instead was `{size}`."
            )
        return size

    def _list(
        self,
        scope: str,
        items: list[Any],
        ids: list[str],
        cursor: Any,
        size: int,
        list_type: str,
    ) -> tuple[dict[str, Any], list[Any]]:
        """One page of a list: the response without results, and the items on this page."""
        start = 0
        if cursor is not None:
            saved = self._cursors.get(str(cursor))
            if saved is None or saved.scope != scope:
                raise _invalid(
                    f"body failed validation: start_cursor should be a valid cursor, instead was "
                    f"`{json.dumps(cursor)}`."
                )
            start = ids.index(saved.next_id) if saved.next_id in ids else saved.offset
        end = start + size
        next_cursor = None
        if end < len(items):
            next_cursor = str(uuid.UUID(int=self._ids.getrandbits(128), version=4))
            self._cursors[next_cursor] = _Cursor(scope, end, ids[end])
        response: dict[str, Any] = {
            "object": "list",
            "results": [],
            "next_cursor": next_cursor,
            "has_more": next_cursor is not None,
            "type": list_type,
            list_type: {},
        }
        return response, items[start:end]

    def _list_children(self, block_id: str, params: httpx.QueryParams) -> dict[str, Any]:
        parent_id = self._container(block_id)
        blocks: list[dict[str, Any]] = []
        for child_id in self._children.get(parent_id, []):
            if child_id in self._blocks:
                if not self._blocks[child_id].in_trash:
                    blocks.append(self._block_object(self._blocks[child_id]))
                continue
            if child_id in self._databases:
                db = self._databases[child_id]
                kind, title, created = "child_database", _plain(db.title), db.created
            elif self._pages[child_id].in_trash:
                continue
            else:
                child = self._pages[child_id]
                kind, title, created = (
                    "child_page",
                    _plain(child.values.get("title")),
                    child.created,
                )
            blocks.append(
                {
                    "object": "block",
                    "id": child_id,
                    "parent": {"type": "page_id", "page_id": parent_id},
                    "created_time": _minute(created),
                    "last_edited_time": _minute(created),
                    "created_by": {"object": "user", "id": BOT_USER_ID},
                    "last_edited_by": {"object": "user", "id": BOT_USER_ID},
                    "has_children": False,
                    "archived": False,
                    "in_trash": False,
                    "type": kind,
                    kind: {"title": title},
                }
            )
        size = self._page_size(params.get("page_size"), "page_size")
        response, chunk = self._list(
            f"children:{parent_id}",
            blocks,
            [b["id"] for b in blocks],
            params.get("start_cursor"),
            size,
            "block",
        )
        response["results"] = chunk
        return response

    # ---------------------------------------------------------------- blocks (page bodies)

    def _container(self, block_id: str) -> str:
        """A page's or a block's id, for listing or appending children; 404 otherwise."""
        wanted = _normalise_id(block_id)
        if wanted in self._pages:
            return wanted
        block = self._blocks.get(wanted)
        if block is None or block.in_trash:
            raise self._not_found("block", block_id)
        return wanted

    def _block_inputs(
        self, raw: Any, where: str, depth: int
    ) -> list[tuple[str, dict[str, Any], Any]]:
        """Validated block requests: (type, content, nested children requests)."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise _invalid(f"body failed validation: {where} should be an array.")
        if len(raw) > 100:
            raise _too_long(where, 100, len(raw))
        blocks = []
        for i, item in enumerate(raw):
            here = f"{where}[{i}]"
            if not isinstance(item, dict):
                raise _invalid(f"body failed validation: {here} should be an object.")
            kind = item.get("type") or next(
                (k for k in item if k in RICH_BLOCKS or k in OTHER_BLOCKS), None
            )
            if kind not in RICH_BLOCKS and kind not in OTHER_BLOCKS:
                raise _invalid(
                    f"body failed validation: {here}.paragraph should be defined, instead was "
                    "`undefined`."
                )
            raw_content = item.get(kind)
            if not isinstance(raw_content, dict):
                raise _invalid(
                    f"body failed validation: {here}.{kind} should be an object, instead was "
                    f"`{json.dumps(raw_content)}`."
                )
            content = self._block_content(kind, raw_content, f"{here}.{kind}")
            nested = raw_content.get("children")
            if nested is not None and depth >= 2:
                raise _invalid(
                    f"body failed validation: {here}.{kind}.children should be not present, "
                    "instead was an array."
                )
            blocks.append(
                (kind, content, self._block_inputs(nested, f"{here}.{kind}.children", depth + 1))
            )
        return blocks

    def _block_content(self, kind: str, raw: dict[str, Any], where: str) -> dict[str, Any]:
        if kind in RICH_BLOCKS:
            content = {
                "rich_text": self._rich_text_input(f"{where}.rich_text", raw.get("rich_text", [])),
                "color": raw.get("color", "default"),
                **{
                    key: deepcopy(raw.get(key, default))
                    for key, default in RICH_BLOCKS[kind].items()
                },
            }
            if content["color"] not in COLOURS and not (
                str(content["color"]).endswith("_background")
                and str(content["color"]).removesuffix("_background") in COLOURS
            ):
                raise _invalid(f"body failed validation: {where}.color should be a colour.")
            return content
        if kind in ("image", "video", "embed", "bookmark"):
            url = (raw.get("external") or {}).get("url") if kind in ("image", "video") else None
            url = url if url is not None else raw.get("url")
            if not isinstance(url, str) or not re.match(r"https?://", url) or _length(url) > 2000:
                raise _invalid("Invalid URL for link.")
            caption = self._rich_text_input(f"{where}.caption", raw.get("caption", []))
            if kind in ("image", "video"):
                return {"caption": caption, "type": "external", "external": {"url": url}}
            return {"caption": caption, "url": url}
        content = {k: deepcopy(v) for k, v in raw.items() if k != "children"}
        return content

    def _add_blocks(
        self,
        parent_id: str,
        inputs: list[tuple[str, dict[str, Any], Any]],
        after: str | None = None,
    ) -> list[_Block]:
        now = self.clock.now()
        parent: dict[str, Any] = (
            {"type": "page_id", "page_id": parent_id}
            if parent_id in self._pages
            else {"type": "block_id", "block_id": parent_id}
        )
        siblings = self._children.setdefault(parent_id, [])
        position = siblings.index(after) + 1 if after in siblings else len(siblings)
        added = []
        for kind, content, nested in inputs:
            block = _Block(self._new_id(), dict(parent), kind, content, now, now)
            self._blocks[block.id] = block
            siblings.insert(position, block.id)
            position += 1
            self._add_blocks(block.id, nested)
            added.append(block)
        if inputs:
            self._touch(parent_id)
        return added

    def _touch(self, block_id: str) -> None:
        """An edit in a page body is an edit of its page: last_edited_time moves."""
        now = self.clock.now()
        current = block_id
        while current in self._blocks:
            self._blocks[current].edited = now
            parent = self._blocks[current].parent
            current = str(parent.get("page_id") or parent.get("block_id"))
        if current in self._pages:
            self._seq += 1
            self._pages[current].edited, self._pages[current].edit_seq = now, self._seq

    def _append_children(self, block_id: str, body: dict[str, Any]) -> dict[str, Any]:
        parent_id = self._container(block_id)
        if "children" not in body:
            raise _invalid(
                "body failed validation: body.children should be defined, instead was `undefined`."
            )
        after = body.get("after")
        if after is not None and _normalise_id(after) not in self._children.get(parent_id, []):
            raise self._not_found("block", str(after))
        inputs = self._block_inputs(body["children"], "body.children", 0)
        added = self._add_blocks(parent_id, inputs, _normalise_id(after) if after else None)
        return {
            "object": "list",
            "results": [self._block_object(block) for block in added],
            "next_cursor": None,
            "has_more": False,
            "type": "block",
            "block": {},
        }

    def _delete_block(self, block_id: str) -> dict[str, Any]:
        wanted = _normalise_id(block_id)
        if wanted in self._pages:
            page = self._update_page(wanted, {"in_trash": True})
            return {**self._page_object(page)}
        block = self._blocks.get(wanted)
        if block is None:
            raise self._not_found("block", block_id)
        if block.in_trash:
            raise _invalid(
                "Can't edit block that is archived. You must unarchive the block before editing."
            )
        block.in_trash = True
        self._touch(block.id)
        return self._block_object(block)

    def _block_object(self, block: _Block) -> dict[str, Any]:
        children = [c for c in self._children.get(block.id, []) if not self._blocks[c].in_trash]
        return {
            "object": "block",
            "id": block.id,
            "parent": dict(block.parent),
            "created_time": _minute(block.created),
            "last_edited_time": _minute(block.edited),
            "created_by": {"object": "user", "id": BOT_USER_ID},
            "last_edited_by": {"object": "user", "id": BOT_USER_ID},
            "has_children": bool(children),
            "archived": block.in_trash,
            "in_trash": block.in_trash,
            "type": block.type,
            block.type: deepcopy(block.content),
        }

    def _view(self, view_id: str) -> dict[str, Any]:
        wanted = _normalise_id(view_id)
        for db in self._databases.values():
            for view in db.views:
                if view["id"] == wanted:
                    return view
        raise self._not_found("view", view_id)

    def _list_views(self, params: httpx.QueryParams) -> dict[str, Any]:
        """View references only ({object, id}), as Notion answers: a name needs a retrieve."""
        views: list[dict[str, Any]]
        if params.get("database_id"):
            views = self._database(params["database_id"]).views
        elif params.get("data_source_id"):
            ds = self._data_source(params["data_source_id"])
            views = [
                v for v in self._databases[ds.database_id].views if v["data_source_id"] == ds.id
            ]
        else:
            raise _invalid("body failed validation: database_id or data_source_id is required.")
        size = self._page_size(params.get("page_size"), "page_size")
        scope = f"views:{params.get('database_id') or params.get('data_source_id')}"
        response, chunk = self._list(
            scope, views, [v["id"] for v in views], params.get("start_cursor"), size, "view"
        )
        response["results"] = [{"object": "view", "id": v["id"]} for v in chunk]
        return response

    def _create_view(self, body: dict[str, Any]) -> dict[str, Any]:
        db = self._database(body.get("database_id"))
        ds = self._data_source(body.get("data_source_id"))
        if ds.database_id != db.id:
            raise _invalid("The data source does not belong to the database.")
        if body.get("type") not in ("table", "board", "list", "calendar", "gallery", "timeline"):
            raise _invalid(f"body failed validation: body.type `{body.get('type')}` is invalid.")
        if body.get("filter") not in (None, {}):
            self._compile(ds, body["filter"], 0, "body.filter")
        self._sort_keys(ds, body.get("sorts") or [])
        view_id = self._new_id()
        now = _minute(self.clock.now())
        view = {
            "object": "view",
            "id": view_id,
            "parent": {"type": "database_id", "database_id": db.id},
            "name": str(body.get("name", "")),
            "type": body["type"],
            "created_time": now,
            "last_edited_time": now,
            "url": f"https://app.notion.com/p/{db.id.replace('-', '')}?v={view_id.replace('-', '')}",
            "data_source_id": ds.id,
            "created_by": {"object": "user", "id": BOT_USER_ID},
            "last_edited_by": {"object": "user", "id": BOT_USER_ID},
            "filter": deepcopy(body.get("filter")),
            "sorts": deepcopy(body.get("sorts")),
        }
        db.views.append(view)
        return view

    # ---------------------------------------------------------------- query

    def _query(self, data_source_id: str, body: dict[str, Any]) -> dict[str, Any]:
        ds = self._data_source(data_source_id)
        size = self._page_size(body.get("page_size"), "body.page_size")
        condition = body.get("filter")
        matches = (
            None if condition in (None, {}) else self._compile(ds, condition, 0, "body.filter")
        )
        keys = self._sort_keys(ds, body.get("sorts") or [])
        trashed = bool(body.get("in_trash", body.get("archived", False)))
        pages = [
            p
            for p in self._pages.values()  # creation order: how ties under `sorts` come out
            if p.data_source_id == ds.id
            and p.in_trash == trashed
            and (matches is None or matches(p))
        ]
        if not keys:  # Notion promises no order: don't hand out creation order either
            pages.sort(key=lambda p: p.shuffle)
        for key, descending in reversed(keys):  # stable sorts: the first sort wins
            valued = [(key(p), p) for p in pages]
            filled = [(v, p) for v, p in valued if v is not None]
            filled.sort(key=lambda pair: pair[0], reverse=descending)
            pages = [p for _, p in filled] + [p for v, p in valued if v is None]  # empties last
        capped = len(pages) > 10_000
        pages = pages[:10_000]
        response, chunk = self._list(
            f"query:{ds.id}",
            pages,
            [p.id for p in pages],
            body.get("start_cursor"),
            size,
            "page_or_data_source",
        )
        response["results"] = [self._page_object(p) for p in chunk]
        if capped:
            response["request_status"] = {
                "type": "incomplete",
                "incomplete_reason": "query_result_limit_reached",
            }
        return response

    def _sort_keys(self, ds: _DataSource, sorts: Any) -> list[tuple[Callable[[_Page], Any], bool]]:
        if not isinstance(sorts, list) or len(sorts) > 100:
            raise _invalid("body failed validation: body.sorts should be an array of ≤ 100 sorts.")
        keys: list[tuple[Callable[[_Page], Any], bool]] = []
        for i, sort in enumerate(sorts):
            direction = sort.get("direction") if isinstance(sort, dict) else None
            if direction not in ("ascending", "descending"):
                raise _invalid(
                    f"body failed validation: body.sorts[{i}].direction should be `ascending` or "
                    "`descending`."
                )
            if sort.get("timestamp") == "created_time" and "property" not in sort:
                keys.append((lambda p: (p.created, p.seq), direction == "descending"))
                continue
            if sort.get("timestamp") == "last_edited_time" and "property" not in sort:
                keys.append(
                    (lambda p: (p.edited, max(p.seq, p.edit_seq)), direction == "descending")
                )
                continue
            prop = self._find(ds.properties, sort.get("property"))
            if prop is None:
                raise _invalid(
                    f"Could not find sort property with name or id: {sort.get('property')}"
                )
            keys.append((self._sort_value(prop), direction == "descending"))
        return keys

    def _sort_value(self, prop: dict[str, Any]) -> Callable[[_Page], Any]:
        kind = prop["type"]

        def key(page: _Page) -> Any:
            value = self._compare_value(prop, page)
            if kind in ("select", "status", "multi_select"):  # by the schema's option order
                order = [o["name"] for o in prop[kind]["options"]]
                names = value if isinstance(value, list) else [value] if value else []
                ranks = tuple(order.index(n) for n in names if n in order)
                return ranks or None
            if isinstance(value, str):
                return (value.casefold(), value) if value else None
            if isinstance(value, list):
                return len(value) or None
            return value

        return key

    def _compile(self, ds: _DataSource, condition: Any, depth: int, where: str) -> Predicate:
        """Validate a filter (as Notion does) and turn it into a predicate on pages."""
        if not isinstance(condition, dict):
            raise _invalid(f"body failed validation: {where} should be an object.")
        for group in ("and", "or"):
            if group in condition:
                if depth >= 2:
                    raise _invalid(
                        f"body failed validation: {where}.{group} is nested too deeply: nesting "
                        "is supported up to two levels deep."
                    )
                items = condition[group]
                if not isinstance(items, list):
                    raise _invalid(f"body failed validation: {where}.{group} should be an array.")
                if len(items) > 100:
                    raise _too_long(f"{where}.{group}", 100, len(items))
                parts = [
                    self._compile(ds, item, depth + 1, f"{where}.{group}[{i}]")
                    for i, item in enumerate(items)
                ]
                if group == "and":
                    return lambda p: all(part(p) for part in parts)
                return lambda p: any(part(p) for part in parts)
        if "timestamp" in condition:
            stamp = condition["timestamp"]
            if "property" in condition:
                raise _invalid(
                    f"body failed validation: {where}.property should not be defined for a "
                    "timestamp filter."
                )
            if stamp not in ("created_time", "last_edited_time"):
                raise _invalid(f"body failed validation: {where}.timestamp `{stamp}` is invalid.")
            check = self._date_check(condition, stamp, where)
            return lambda p: check(
                _minute_instant(p.created if stamp == "created_time" else p.edited)
            )
        key = condition.get("property")
        prop = self._find(ds.properties, key)
        if prop is None:
            raise _invalid(f"Could not find property with name or id: {key}")
        kind = prop["type"]
        aliases = {
            "title": ("title", "rich_text"),
            "created_time": ("created_time", "date"),
            "last_edited_time": ("last_edited_time", "date"),
        }
        used = next((k for k in aliases.get(kind, (kind,)) if k in condition), None)
        if used is None:
            raise _invalid(
                f"body failed validation: {where}.{kind} should be defined, instead was "
                "`undefined`."
            )

        def value(page: _Page) -> Any:
            return self._compare_value(prop, page)

        if kind in ("date", "created_time", "last_edited_time"):
            check = self._date_check(condition, used, where)
            return lambda p: check(value(p))
        if kind in TEXT or kind in STRINGS:
            op, operand = self._operator(condition, used, where, TEXT_OPS | EMPTY_OPS, str)
            return lambda p: _text_matches(op, operand, value(p) or "")
        if kind == "number":
            op, operand = self._operator(condition, used, where, NUMBER_OPS | EMPTY_OPS, float)
            return lambda p: _number_matches(op, operand, value(p))
        if kind == "checkbox":
            op, operand = self._operator(condition, used, where, {"equals", "does_not_equal"}, bool)
            return lambda p: (value(p) is operand) == (op == "equals")
        if kind in ("select", "status"):
            ops = {"equals", "does_not_equal"} | EMPTY_OPS
            op, operand = self._operator(condition, used, where, ops, str)
            return lambda p: _select_matches(op, operand, value(p))
        if kind in LISTS:
            ops = {"contains", "does_not_contain"} | EMPTY_OPS
            op, operand = self._operator(condition, used, where, ops, str)
            if kind == "relation" and op in ("contains", "does_not_contain"):
                operand = _normalise_id(operand)
            return lambda p: _list_matches(op, operand, value(p) or [])
        raise _invalid(f"body failed validation: {where}: {kind} properties can't be filtered.")

    @staticmethod
    def _operator(
        condition: dict[str, Any], used: str, where: str, ops: Iterable[str], kind: type
    ) -> tuple[str, Any]:
        test = condition[used]
        allowed = set(ops)
        if not isinstance(test, dict) or len(test) != 1 or next(iter(test)) not in allowed:
            raise _invalid(
                f"body failed validation: {where}.{used} should have exactly one of "
                + ", ".join(f"`{op}`" for op in sorted(allowed))
                + "."
            )
        op, operand = next(iter(test.items()))
        if op in EMPTY_OPS:
            ok = operand is True
        elif kind is float:
            ok = isinstance(operand, int | float) and not isinstance(operand, bool)
        elif kind is str and op == "equals" and used in ("select", "status"):
            ok = isinstance(operand, str) or (
                isinstance(operand, list) and all(isinstance(o, str) for o in operand)
            )
        else:
            ok = isinstance(operand, kind)
        if not ok:
            raise _invalid(
                f"body failed validation: {where}.{used}.{op} should be a "
                f"{'`true`' if op in EMPTY_OPS else kind.__name__}, instead was "
                f"`{json.dumps(operand)}`."
            )
        return op, operand

    def _date_check(
        self, condition: dict[str, Any], used: str, where: str
    ) -> Callable[[datetime | None], bool]:
        """§3.3: absolute instants, UTC by default; a date-only value means that UTC day."""
        op, operand = self._operator(condition, used, where, DATE_OPS | EMPTY_OPS, str)
        if op in EMPTY_OPS:
            return lambda v: (v is None) == (op == "is_empty")
        tests: dict[str, Callable[[datetime], bool]]
        if _DATE_ONLY.fullmatch(operand):
            low = datetime.combine(date.fromisoformat(operand), datetime.min.time(), UTC)
            high = low + timedelta(days=1)
            tests = {
                "equals": lambda v: low <= v < high,
                "before": lambda v: v < low,
                "on_or_before": lambda v: v < high,
                "after": lambda v: v >= high,
                "on_or_after": lambda v: v >= low,
            }
        else:
            try:
                moment = datetime.fromisoformat(operand)
            except ValueError:
                raise _invalid(
                    f"body failed validation: {where}.{used}.{op} should be an ISO 8601 date, "
                    f"instead was `{json.dumps(operand)}`."
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
            tests = {
                "equals": lambda v: v == moment,
                "before": lambda v: v < moment,
                "on_or_before": lambda v: v <= moment,
                "after": lambda v: v > moment,
                "on_or_after": lambda v: v >= moment,
            }
        test = tests[op]
        return lambda v: v is not None and test(v)


def _text_matches(op: str, operand: Any, text: str) -> bool:
    if op in EMPTY_OPS:
        return (text == "") == (op == "is_empty")
    tests: dict[str, bool] = {
        "equals": text == operand,
        "does_not_equal": text != operand,
        "contains": operand in text,
        "does_not_contain": operand not in text,
        "starts_with": text.startswith(operand),
        "ends_with": text.endswith(operand),
    }
    return tests[op]


def _number_matches(op: str, operand: float, number: float | None) -> bool:
    if op in EMPTY_OPS:
        return (number is None) == (op == "is_empty")
    if number is None:
        return op == "does_not_equal"
    tests = {
        "equals": number == operand,
        "does_not_equal": number != operand,
        "greater_than": number > operand,
        "less_than": number < operand,
        "greater_than_or_equal_to": number >= operand,
        "less_than_or_equal_to": number <= operand,
    }
    return tests[op]


def _select_matches(op: str, operand: Any, name: str | None) -> bool:
    if op in EMPTY_OPS:
        return (name is None) == (op == "is_empty")
    wanted = operand if isinstance(operand, list) else [operand]
    return (name in wanted) == (op == "equals")


def _list_matches(op: str, operand: Any, values: list[Any]) -> bool:
    if op in EMPTY_OPS:
        return (not values) == (op == "is_empty")
    return (operand in values) == (op == "contains")

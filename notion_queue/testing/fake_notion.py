"""A fake of Notion's HTTP API (Notion-Version 2025-09-03) for the subset a queue uses.

It behaves like the real one where a client can tell: databases hold data sources, rows are
pages whose `parent` is a data source, every page shows every property (empty ones as null, []
or false), rich text and dates come back normalised, page timestamps are cut to the minute,
queries take nested and/or filters and sorts and page through results with opaque cursors,
unknown properties and wrong value types are 400 validation_error with Notion's wording, and a
token bucket answers 429 rate_limited with Retry-After. Faults are injected per call kind:
5xx, HTML error pages, timeouts, an outage, and "committed, then failed" writes.

Use it in process (`transport()`, an httpx.MockTransport the real notion-client runs on) or
served on 127.0.0.1 (`serve()`) when real server and worker processes are under test.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from dateutil import parser as dateparser

from notion_queue.clock import Clock, SystemClock
from notion_queue.pacing import TokenBucket
from notion_queue.testing._http import serve

JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPES = ("title", "rich_text")
READ_ONLY = ("created_time", "last_edited_time", "formula", "rollup", "created_by", "unique_id")
COLOURS = ("default", "gray", "brown", "orange", "yellow", "green", "blue", "purple", "pink", "red")


class NotionError(Exception):
    def __init__(
        self, status: int, code: str, message: str, additional: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.additional = additional
        self.headers: dict[str, str] = {}


def validation(message: str) -> NotionError:
    return NotionError(400, "validation_error", message)


@dataclass
class RecordedRequest:
    method: str
    path: str
    status: int
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


@dataclass
class _DataSource:
    id: str
    database_id: str
    title: str
    properties: dict[str, dict[str, Any]]  # name → {id, name, type, <type>: config}
    created: datetime


@dataclass
class _Database:
    id: str
    parent_page_id: str
    title: str
    data_source_ids: list[str]
    created: datetime
    views: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Page:
    id: str
    parent: dict[str, Any]
    values: dict[str, Any]  # property name → stored value (read form without id/type)
    created: datetime
    edited: datetime
    in_trash: bool = False
    seq: int = 0


def _minute(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:00.000Z")


def _normalise_id(value: str) -> str:
    hexed = value.replace("-", "").lower()
    if not re.fullmatch(r"[0-9a-f]{32}", hexed):
        return value
    return str(uuid.UUID(hexed))


def _rich_text_item(content: str, annotations: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "text",
        "text": {"content": content, "link": None},
        "annotations": annotations
        or {
            "bold": False,
            "italic": False,
            "strikethrough": False,
            "underline": False,
            "code": False,
            "color": "default",
        },
        "plain_text": content,
        "href": None,
    }


def _parse_instant(value: str) -> datetime:
    parsed = dateparser.isoparse(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _date_only(value: str) -> bool:
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value))


class FakeNotion:
    def __init__(
        self,
        clock: Clock | None = None,
        *,
        token: str = "secret_fake",
        rate_limit: float | None = None,
        burst: float = 10,
        seed: int = 0,
    ) -> None:
        self.clock = clock or SystemClock()
        self.token = token
        self.rate_limit = rate_limit
        self._bucket = TokenBucket(self.clock, rate_limit, burst) if rate_limit else None
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._pages: dict[str, _Page] = {}
        self._databases: dict[str, _Database] = {}
        self._data_sources: dict[str, _DataSource] = {}
        self._parent_pages: dict[str, str] = {}
        self._seq = 0
        self._faults: list[_Fault] = []
        self._random_faults: dict[str, Any] | None = None
        self._down = False
        self.latency: tuple[float, float] | None = None
        self.requests: list[RecordedRequest] = []
        self._cursors: dict[str, int] = {}

    # plumbing

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> AbstractContextManager[str]:
        def served(request: httpx.Request) -> httpx.Response:
            if self.latency is not None:
                time.sleep(self._random.uniform(*self.latency))
            return self.handle(request)

        return serve(served, host, port)

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def count(self, kind: str | None = None, status: int | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (kind is None or r.kind == kind) and (status is None or r.status == status)
            )

    # fault injection

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
    ) -> None:
        with self._lock:
            self._faults.append(
                _Fault(kind, status, code, times, commit, timeout, html, retry_after)
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
        with self._lock:
            self._random_faults = (
                {
                    "p": probability,
                    "kinds": set(kinds) if kinds is not None else None,
                    "statuses": list(statuses),
                    "commit": commit_probability,
                    "timeout": timeout_probability,
                }
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
        plan = self._random_faults
        wanted = plan is not None and (plan["kinds"] is None or kind in plan["kinds"])
        if plan is not None and wanted and self._random.random() < plan["p"]:
            status, code = self._random.choice(plan["statuses"])
            return _Fault(
                kind,
                status,
                code,
                1,
                self._random.random() < plan["commit"],
                self._random.random() < plan["timeout"],
                False,
                1 if status == 429 else None,
            )
        return None

    # test helpers (no auth, no rate limit, no faults, not recorded)

    def create_parent_page(self, title: str = "Parent") -> str:
        with self._lock:
            page_id = self._new_id()
            self._parent_pages[page_id] = title
            return page_id

    def create_database(
        self, parent_page_id: str, title: str, properties: dict[str, Any]
    ) -> tuple[str, str]:
        with self._lock:
            db = self._create_database(
                {
                    "parent": {"type": "page_id", "page_id": parent_page_id},
                    "title": [{"text": {"content": title}}],
                    "initial_data_source": {"properties": properties},
                }
            )
            return db.id, db.data_source_ids[0]

    def page(self, page_id: str) -> dict[str, Any]:
        with self._lock:
            return self._page_object(self._get_page(page_id))

    def pages(self, data_source_id: str, include_trashed: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            ds = self._get_data_source(data_source_id)
            return [
                self._page_object(p)
                for p in self._pages.values()
                if p.parent.get("data_source_id") == ds.id and (include_trashed or not p.in_trash)
            ]

    def edit_page(self, page_id: str, properties: dict[str, Any]) -> None:
        """A marketer's edit in the Notion UI (validated like PATCH, but never rate limited)."""
        with self._lock:
            page = self._get_page(page_id)
            self._write_properties(page, properties)
            page.edited = self.clock.now()

    def data_source(self, data_source_id: str) -> dict[str, Any]:
        with self._lock:
            return self._data_source_object(self._get_data_source(data_source_id))

    # the API

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self._down:
            raise httpx.ConnectError("Notion is down (FakeNotion.take_down)", request=request)
        path = re.sub(r"/+", "/", request.url.path)
        kind = _kind(request.method, path)
        with self._lock:
            response = self._handle(request, path, kind)
            self.requests.append(
                RecordedRequest(
                    request.method, path, response.status_code, kind, self.clock.monotonic()
                )
            )
        if response.extensions.get("timeout"):
            raise httpx.ReadTimeout("FakeNotion: timed out", request=request)
        return response

    def _handle(self, request: httpx.Request, path: str, kind: str) -> httpx.Response:
        try:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                raise NotionError(401, "unauthorized", "API token is invalid.")
            if not request.headers.get("notion-version"):
                raise NotionError(
                    400,
                    "missing_version",
                    "Notion-Version header failed validation: Notion-Version header should be "
                    "defined, instead was `undefined`.",
                )
            if self._bucket is not None:
                wait = self._bucket.take()
                if wait > 0:
                    retry_after = self._bucket.retry_after_header(wait)
                    error = NotionError(
                        429,
                        "rate_limited",
                        "You have been rate limited. Please try again in a few minutes.",
                        {
                            "rate_limit_reason": "public_api_request_rate_limit",
                            "retry_after": retry_after,
                        },
                    )
                    error.headers["Retry-After"] = retry_after
                    raise error
            fault = self._draw_fault(kind)
            if fault is not None and not fault.commit:
                return self._fault_response(fault, None)
            body = self._body(request)
            result = self._route(request.method, path, kind, body, request.url.params)
            if fault is not None:
                return self._fault_response(fault, result)
            return _json(200, {**result, "request_id": self._new_id()})
        except NotionError as exc:
            return _json(
                exc.status,
                {
                    "object": "error",
                    "status": exc.status,
                    "code": exc.code,
                    "message": exc.message,
                    "request_id": self._new_id(),
                    **({"additional_data": exc.additional} if exc.additional else {}),
                },
                exc.headers,
            )

    def _fault_response(self, fault: _Fault, committed: dict[str, Any] | None) -> httpx.Response:
        if fault.timeout:
            response = httpx.Response(504)
            response.extensions["timeout"] = True
            return response
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
        if fault.html:
            return httpx.Response(
                fault.status,
                headers={"Content-Type": "text/html", **headers},
                content=f"<html><body><h1>{fault.status} Bad Gateway</h1>cloudflare</body></html>",
            )
        body: dict[str, Any] = {
            "object": "error",
            "status": fault.status,
            "code": fault.code,
            "message": "Unexpected error occurred." if fault.status == 500 else fault.code,
            "request_id": self._new_id(),
        }
        if committed is not None and committed.get("object") == "page" and fault.status == 503:
            body["additional_data"] = {
                "committed_resource_id": committed["id"],
                "retry_guidance": ["Read the object again", "Do not repeat the write"],
            }
        return _json(fault.status, body, headers)

    def _body(self, request: httpx.Request) -> dict[str, Any]:
        if request.method in ("GET", "DELETE") or not request.content:
            return {}
        try:
            body = json.loads(request.content)
        except json.JSONDecodeError:
            raise NotionError(400, "invalid_json", "Error parsing JSON body.") from None
        if not isinstance(body, dict):
            raise validation("body failed validation: body should be an object.")
        if len(request.content) > 500_000:
            raise validation("body failed validation: the request body is larger than 500KB.")
        return body

    def _route(
        self, method: str, path: str, kind: str, body: dict[str, Any], params: httpx.QueryParams
    ) -> dict[str, Any]:
        parts = path.strip("/").split("/")
        if not parts or parts[0] != "v1":
            raise NotionError(400, "invalid_request_url", "Invalid request URL.")
        parts = parts[1:]
        if kind == "retrieve_database":
            return self._database_object(self._get_database(parts[1]))
        if kind == "create_database":
            return self._database_object(self._create_database(body))
        if kind == "retrieve_data_source":
            return self._data_source_object(self._get_data_source(parts[1]))
        if kind == "update_data_source":
            return self._data_source_object(self._update_data_source(parts[1], body))
        if kind == "query":
            return self._query(parts[1], body)
        if kind == "create_page":
            return self._page_object(self._create_page(body))
        if kind == "retrieve_page":
            return self._page_object(self._get_page(parts[1]))
        if kind == "update_page":
            return self._page_object(self._update_page(parts[1], body))
        if kind == "list_children":
            return self._children(parts[1], params)
        if kind == "list_views":
            return self._list_views(params)
        if kind == "create_view":
            return self._create_view(body)
        raise NotionError(400, "invalid_request_url", "Invalid request URL.")

    # databases and data sources

    def _not_found(self, what: str, object_id: str) -> NotionError:
        return NotionError(
            404,
            "object_not_found",
            f"Could not find {what} with ID: {object_id}. Make sure the relevant pages and "
            'databases are shared with your integration "notion-queue".',
            {"integration_id": "fake-integration"},
        )

    def _get_database(self, database_id: str) -> _Database:
        db = self._databases.get(_normalise_id(database_id))
        if db is None:
            raise self._not_found("database", database_id)
        return db

    def _get_data_source(self, data_source_id: str) -> _DataSource:
        ds = self._data_sources.get(_normalise_id(data_source_id))
        if ds is None:
            raise self._not_found("data source", data_source_id)
        return ds

    def _create_database(self, body: dict[str, Any]) -> _Database:
        parent = body.get("parent")
        if not isinstance(parent, dict):
            raise validation(
                "body failed validation: body.parent should be defined, instead was `undefined`."
            )
        parent_id = _normalise_id(str(parent.get("page_id", "")))
        if parent_id not in self._parent_pages:
            raise self._not_found("page", parent_id)
        title = "".join(
            str(item.get("text", {}).get("content", "")) for item in body.get("title") or []
        )
        schema = (body.get("initial_data_source") or {}).get("properties") or {
            "Name": {"title": {}}
        }
        now = self.clock.now()
        db = _Database(self._new_id(), parent_id, title, [], now)
        ds = _DataSource(self._new_id(), db.id, title, {}, now)
        for name, config in schema.items():
            self._add_property(ds, name, config)
        titles = [p for p in ds.properties.values() if p["type"] == "title"]
        if len(titles) != 1:
            raise validation("A data source must have exactly one title property.")
        db.data_source_ids.append(ds.id)
        self._databases[db.id] = db
        self._data_sources[ds.id] = ds
        return db

    def _add_property(self, ds: _DataSource, name: str, config: dict[str, Any]) -> None:
        kinds = [k for k in config if k not in ("name", "description", "type")]
        if len(kinds) != 1:
            raise validation(f"Property {name!r} must have exactly one type.")
        kind = kinds[0]
        settings = dict(config[kind] or {})
        if kind in ("select", "multi_select", "status"):
            settings["options"] = [self._option(o) for o in settings.get("options", [])]
        if kind == "number":
            settings.setdefault("format", "number")
        if kind == "relation":
            target = settings.get("data_source_id")
            if target is not None:
                self._get_data_source(str(target))
        prop_id = "title" if kind == "title" else self._short_id()
        ds.properties[name] = {
            "id": prop_id,
            "name": name,
            "description": None,
            "type": kind,
            kind: settings,
        }

    def _short_id(self) -> str:
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%:;<=>?@[]^_`{|}~"
        return "".join(self._random.choice(alphabet) for _ in range(4))

    def _option(self, option: dict[str, Any]) -> dict[str, Any]:
        name = str(option.get("name", ""))
        if "," in name:
            raise validation(f"Select option names can't contain commas: {name!r}.")
        colour = option.get("color") or self._random.choice(COLOURS)
        return {
            "id": option.get("id") or self._short_id(),
            "name": name,
            "color": colour,
            "description": None,
        }

    def _update_data_source(self, data_source_id: str, body: dict[str, Any]) -> _DataSource:
        ds = self._get_data_source(data_source_id)
        for name, change in (body.get("properties") or {}).items():
            existing = self._property(ds, name, missing_ok=True)
            if change is None:
                if existing is not None:
                    del ds.properties[existing["name"]]
                continue
            if existing is None:
                self._add_property(ds, name, change)
                continue
            new_name = change.get("name")
            kind = existing["type"]
            if kind in change and kind in ("select", "multi_select"):
                existing[kind]["options"] = [
                    self._option(o) for o in (change[kind] or {}).get("options", [])
                ]
            if new_name and new_name != existing["name"]:
                del ds.properties[existing["name"]]
                existing["name"] = new_name
                ds.properties[new_name] = existing
                for page in self._pages.values():
                    if page.parent.get("data_source_id") == ds.id and name in page.values:
                        page.values[new_name] = page.values.pop(name)
        if body.get("title"):
            ds.title = "".join(str(i.get("text", {}).get("content", "")) for i in body["title"])
        return ds

    def _property(
        self, ds: _DataSource, key: str, *, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        if key in ds.properties:
            return ds.properties[key]
        for prop in ds.properties.values():
            if prop["id"] == key:
                return prop
        if missing_ok:
            return None
        raise validation(f"{key} is not a property that exists.")

    def _database_object(self, db: _Database) -> dict[str, Any]:
        stamp = db.created.astimezone(UTC).isoformat(timespec="milliseconds")
        return {
            "object": "database",
            "id": db.id,
            "title": [_rich_text_item(db.title)],
            "description": [],
            "parent": {"type": "page_id", "page_id": db.parent_page_id},
            "is_inline": False,
            "in_trash": False,
            "is_locked": False,
            "created_time": stamp,
            "last_edited_time": stamp,
            "data_sources": [
                {"id": ds_id, "name": self._data_sources[ds_id].title}
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
            "last_edited_time": _minute(ds.created),
            "title": [_rich_text_item(ds.title)],
            "description": [],
            "is_inline": False,
            "properties": json.loads(json.dumps(ds.properties)),
            "parent": {"type": "database_id", "database_id": ds.database_id},
            "database_parent": {"type": "page_id", "page_id": db.parent_page_id},
            "url": f"https://app.notion.com/p/{ds.database_id.replace('-', '')}",
            "public_url": None,
            "in_trash": False,
            "archived": False,
        }

    def _children(self, block_id: str, params: httpx.QueryParams) -> dict[str, Any]:
        parent = _normalise_id(block_id)
        if parent not in self._parent_pages:
            raise self._not_found("block", block_id)
        blocks = [
            {
                "object": "block",
                "id": db.id,
                "type": "child_database",
                "child_database": {"title": db.title},
                "has_children": False,
                "in_trash": False,
                "archived": False,
                "created_time": _minute(db.created),
                "last_edited_time": _minute(db.created),
            }
            for db in self._databases.values()
            if db.parent_page_id == parent
        ]
        return self._paginate(blocks, params.get("start_cursor"), params.get("page_size"), "block")

    def _list_views(self, params: httpx.QueryParams) -> dict[str, Any]:
        database_id = params.get("database_id")
        if not database_id:
            raise validation("body failed validation: database_id or data_source_id is required.")
        db = self._get_database(database_id)
        return self._paginate(
            list(db.views), params.get("start_cursor"), params.get("page_size"), "view"
        )

    def _create_view(self, body: dict[str, Any]) -> dict[str, Any]:
        db = self._get_database(str(body.get("database_id", "")))
        ds = self._get_data_source(str(body.get("data_source_id", "")))
        if body.get("type") not in ("table", "board", "list", "calendar", "gallery", "timeline"):
            raise validation(
                f"body failed validation: type {body.get('type')!r} is not a view type."
            )
        if body.get("filter"):
            self._check_filter(ds, body["filter"], depth=0)
        for sort in body.get("sorts") or []:
            if "property" in sort:
                self._property(ds, sort["property"])
        view = {
            "object": "view",
            "id": self._new_id(),
            "parent": {"type": "database_id", "database_id": db.id},
            "data_source_id": ds.id,
            "name": str(body.get("name", "")),
            "type": body["type"],
            "filter": body.get("filter"),
            "sorts": body.get("sorts"),
        }
        db.views.append(view)
        return view

    # pages

    def _get_page(self, page_id: str) -> _Page:
        page = self._pages.get(_normalise_id(page_id))
        if page is None:
            raise self._not_found("page", page_id)
        return page

    def _page_ds(self, page: _Page) -> _DataSource:
        return self._data_sources[page.parent["data_source_id"]]

    def _create_page(self, body: dict[str, Any]) -> _Page:
        parent = body.get("parent")
        if not isinstance(parent, dict):
            raise validation(
                "body failed validation: body.parent should be defined, instead was `undefined`."
            )
        if "data_source_id" in parent:
            ds = self._get_data_source(str(parent["data_source_id"]))
        elif "database_id" in parent:
            db = self._get_database(str(parent["database_id"]))
            if len(db.data_source_ids) != 1:
                raise validation(
                    "Database has more than one data source; use a data_source_id parent."
                )
            ds = self._data_sources[db.data_source_ids[0]]
        else:
            raise validation(
                "body failed validation: body.parent.data_source_id should be defined."
            )
        now = self.clock.now()
        page = _Page(
            self._new_id(),
            {"type": "data_source_id", "data_source_id": ds.id, "database_id": ds.database_id},
            {},
            now,
            now,
        )
        self._write_properties(page, body.get("properties") or {})  # validates before storing
        self._seq += 1
        page.seq = self._seq
        self._pages[page.id] = page
        return page

    def _update_page(self, page_id: str, body: dict[str, Any]) -> _Page:
        page = self._get_page(page_id)
        trash = body.get("in_trash", body.get("archived"))
        if page.in_trash and trash is not False:
            raise validation(
                "Can't edit block that is archived. You must unarchive the block before editing."
            )
        if trash is not None:
            page.in_trash = bool(trash)
        self._write_properties(page, body.get("properties") or {})
        page.edited = self.clock.now()
        return page

    def _write_properties(self, page: _Page, properties: dict[str, Any]) -> None:
        ds = self._page_ds(page)
        staged = dict(page.values)
        for key, value in properties.items():
            prop = self._property(ds, key)
            assert prop is not None
            staged[prop["name"]] = self._coerce(prop, value)
        page.values = staged

    def _coerce(self, prop: dict[str, Any], value: Any) -> Any:
        name, kind = prop["name"], prop["type"]
        if kind in READ_ONLY:
            raise validation(
                f"body failed validation. Fix one:\nbody.properties.{name}.title should be "
                "defined, instead was `undefined`."
            )
        if isinstance(value, list) and kind in TEXT_TYPES:
            value = {kind: value}  # the bare rich-text array shorthand
        if not isinstance(value, dict) or kind not in value:
            raise validation(f"{name} is expected to be {kind}.")
        raw = value[kind]
        if kind in TEXT_TYPES:
            if not isinstance(raw, list):
                raise validation(f"{name} is expected to be {kind}.")
            if len(raw) > 100:
                raise validation(
                    f"body failed validation: body.properties.{name}.{kind}.length should be ≤ "
                    f"`100`, instead was `{len(raw)}`."
                )
            items = []
            for item in raw:
                content = str((item.get("text") or {}).get("content", item.get("plain_text", "")))
                if len(content) > 2000:
                    raise validation(
                        f"body failed validation: body.properties.{name}.{kind}[0].text.content"
                        f".length should be ≤ `2000`, instead was `{len(content)}`."
                    )
                items.append(_rich_text_item(content, item.get("annotations")))
            return items
        if kind == "email":
            if raw is not None and (not isinstance(raw, str) or len(raw) > 200):
                raise validation(f"{name} is expected to be email.")
            return raw or None
        if kind == "url":
            return raw or None
        if kind == "number":
            if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int | float)):
                raise validation(f"{name} is expected to be number.")
            return raw
        if kind == "checkbox":
            if not isinstance(raw, bool):
                raise validation(f"{name} is expected to be checkbox.")
            return raw
        if kind in ("select", "status"):
            if raw is None:
                return None
            return self._choose(prop, raw, create=kind == "select")
        if kind == "multi_select":
            return [self._choose(prop, option, create=True) for option in raw or []]
        if kind == "date":
            if raw is None:
                return None
            return self._date_value(name, raw)
        if kind == "relation":
            if not isinstance(raw, list):
                raise validation(f"{name} is expected to be relation.")
            return [{"id": _normalise_id(str(item["id"]))} for item in raw]
        raise validation(f"{name} is expected to be {kind}.")

    def _choose(self, prop: dict[str, Any], raw: Any, *, create: bool) -> dict[str, Any]:
        kind = prop["type"]
        options = prop[kind]["options"]
        if not isinstance(raw, dict):
            raise validation(f"{prop['name']} is expected to be {kind}.")
        for option in options:
            if option["name"] == raw.get("name") or option["id"] == raw.get("id"):
                return {"id": option["id"], "name": option["name"], "color": option["color"]}
        if not create or "name" not in raw:
            raise validation(f"Invalid {kind} option for {prop['name']}: {raw!r}.")
        option = self._option({"name": raw["name"]})
        options.append(option)
        return {"id": option["id"], "name": option["name"], "color": option["color"]}

    def _date_value(self, name: str, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict) or not isinstance(raw.get("start"), str):
            raise validation(f"{name} is expected to be date.")

        def norm(text: str | None) -> str | None:
            if text is None:
                return None
            if _date_only(text):
                return text
            try:
                parsed = dateparser.isoparse(text)
            except ValueError:
                raise validation(f"{name}.date.start {text!r} is not an ISO 8601 date.") from None
            if parsed.tzinfo is None:
                return parsed.isoformat(timespec="milliseconds")
            return parsed.isoformat(timespec="milliseconds")

        return {
            "start": norm(raw["start"]),
            "end": norm(raw.get("end")),
            "time_zone": raw.get("time_zone"),
        }

    def _page_object(self, page: _Page) -> dict[str, Any]:
        ds = self._page_ds(page)
        properties: dict[str, Any] = {}
        for name, prop in ds.properties.items():
            kind = prop["type"]
            value: Any
            if kind == "created_time":
                value = _minute(page.created)
            elif kind == "last_edited_time":
                value = _minute(page.edited)
            else:
                value = page.values.get(name, _empty(kind))
            entry = {"id": prop["id"], "type": kind, kind: json.loads(json.dumps(value))}
            if kind == "relation":
                entry["has_more"] = False
            properties[name] = entry
        return {
            "object": "page",
            "id": page.id,
            "created_time": _minute(page.created),
            "last_edited_time": _minute(page.edited),
            "created_by": {"object": "user", "id": "b0b0b0b0-0000-4000-8000-000000000000"},
            "last_edited_by": {"object": "user", "id": "b0b0b0b0-0000-4000-8000-000000000000"},
            "cover": None,
            "icon": None,
            "parent": dict(page.parent),
            "in_trash": page.in_trash,
            "is_archived": False,
            "is_locked": False,
            "properties": properties,
            "url": f"https://app.notion.com/p/{page.id.replace('-', '')}",
            "public_url": None,
            "archived": page.in_trash,
        }

    # queries

    def _query(self, data_source_id: str, body: dict[str, Any]) -> dict[str, Any]:
        ds = self._get_data_source(data_source_id)
        page_size = body.get("page_size", 100)
        if not isinstance(page_size, int) or not 1 <= page_size <= 100:
            raise validation(
                f"body failed validation: body.page_size should be ≤ `100`, instead was `{page_size}`."
            )
        condition = body.get("filter")
        if condition:
            self._check_filter(ds, condition, depth=0)
        pages = [
            p
            for p in self._pages.values()
            if p.parent.get("data_source_id") == ds.id
            and not p.in_trash
            and (not condition or self._matches(ds, p, condition))
        ]
        sorts = body.get("sorts") or []
        if sorts:
            for sort in reversed(sorts):
                pages.sort(
                    key=self._sort_key(ds, sort),
                    reverse=sort.get("direction") == "descending",
                )
            # empty values last, whatever the direction
        else:
            # Notion promises no order without sorts: do not hand out insertion order.
            shuffler = random.Random(len(pages) * 7919 + 17)
            pages.sort(key=lambda p: p.seq)
            shuffler.shuffle(pages)
        results = [self._page_object(p) for p in pages]
        return self._paginate(results, body.get("start_cursor"), page_size, "page_or_data_source")

    def _paginate(
        self, items: list[dict[str, Any]], cursor: str | None, page_size: Any, kind: str
    ) -> dict[str, Any]:
        size = int(page_size or 100)
        start = 0
        if cursor:
            if cursor not in self._cursors:
                raise validation("body failed validation: start_cursor is not a valid cursor.")
            start = self._cursors[cursor]
        chunk = items[start : start + size]
        more = start + size < len(items)
        next_cursor = None
        if more:
            next_cursor = self._new_id()
            self._cursors[next_cursor] = start + size
        return {
            "object": "list",
            "results": chunk,
            "next_cursor": next_cursor,
            "has_more": more,
            "type": kind,
            kind: {},
        }

    def _check_filter(self, ds: _DataSource, condition: dict[str, Any], depth: int) -> None:
        for group in ("and", "or"):
            if group in condition:
                if depth >= 2:
                    raise validation(
                        "body failed validation: filter nesting is supported up to two levels deep."
                    )
                items = condition[group]
                if not isinstance(items, list) or len(items) > 100:
                    raise validation(
                        f"body failed validation: body.filter.{group} should be an array of at most 100."
                    )
                for item in items:
                    self._check_filter(ds, item, depth + 1)
                return
        if "timestamp" in condition:
            if "property" in condition:
                raise validation(
                    "body failed validation: a timestamp filter must not have a property."
                )
            return
        key = condition.get("property")
        if key is None:
            raise validation("body failed validation: body.filter.property should be defined.")
        prop = self._property(ds, key, missing_ok=True)
        if prop is None:
            raise validation(f"Could not find property with name or id: {key}")
        kind = prop["type"]
        alias = {"title": "rich_text"}.get(kind, kind)
        if kind not in condition and alias not in condition:
            raise validation(f"body failed validation: filter for {key} should use {kind}.")

    def _matches(self, ds: _DataSource, page: _Page, condition: dict[str, Any]) -> bool:
        if "and" in condition:
            return all(self._matches(ds, page, c) for c in condition["and"])
        if "or" in condition:
            return any(self._matches(ds, page, c) for c in condition["or"])
        if "timestamp" in condition:
            stamp = page.created if condition["timestamp"] == "created_time" else page.edited
            stamp = _parse_instant(_minute(stamp))
            return _date_test(stamp, condition[condition["timestamp"]])
        prop = self._property(ds, condition["property"])
        assert prop is not None
        kind = prop["type"]
        test = condition.get(kind) or condition.get("rich_text") or {}
        value = page.values.get(prop["name"], _empty(kind))
        if kind in TEXT_TYPES or kind in ("email", "url"):
            text = "".join(i["plain_text"] for i in value) if kind in TEXT_TYPES else (value or "")
            return _text_test(text, test)
        if kind == "number":
            return _number_test(value, test)
        if kind == "checkbox":
            if "equals" in test:
                return bool(value) is bool(test["equals"])
            return bool(value) is not bool(test.get("does_not_equal"))
        if kind in ("select", "status"):
            name = value["name"] if value else None
            return _select_test(name, test)
        if kind == "multi_select":
            names = {o["name"] for o in value}
            if "contains" in test:
                return test["contains"] in names
            if "does_not_contain" in test:
                return test["does_not_contain"] not in names
            return _empty_test(not names, test)
        if kind == "date":
            start = _parse_instant(value["start"]) if value else None
            return _date_test(start, test)
        if kind == "relation":
            ids = {_normalise_id(i["id"]) for i in value}
            if "contains" in test:
                return _normalise_id(test["contains"]) in ids
            if "does_not_contain" in test:
                return _normalise_id(test["does_not_contain"]) not in ids
            return _empty_test(not ids, test)
        return True

    def _sort_key(self, ds: _DataSource, sort: dict[str, Any]) -> Callable[[_Page], Any]:
        descending = sort.get("direction") == "descending"
        if "timestamp" in sort:
            field_name = sort["timestamp"]
            return lambda p: (p.created if field_name == "created_time" else p.edited, p.seq)
        prop = self._property(ds, sort["property"])
        assert prop is not None
        kind, name = prop["type"], prop["name"]

        def key(page: _Page) -> Any:
            value = page.values.get(name, _empty(kind))
            empty = value in (None, [], "")
            if kind in TEXT_TYPES:
                value = "".join(i["plain_text"] for i in value)
            elif kind in ("select", "status"):
                value = value["name"] if value else ""
            elif kind == "date":
                value = _parse_instant(value["start"]).timestamp() if value else 0.0
            elif kind == "checkbox":
                value = int(bool(value))
            elif value is None:
                value = 0
            # Empty values go last in either direction.
            return ((not empty) if descending else empty, value)

        return key


def _empty(kind: str) -> Any:
    if kind in TEXT_TYPES or kind in ("multi_select", "relation", "people", "files"):
        return []
    if kind == "checkbox":
        return False
    return None


def _empty_test(empty: bool, test: dict[str, Any]) -> bool:
    if test.get("is_empty"):
        return empty
    if test.get("is_not_empty"):
        return not empty
    return True


def _text_test(text: str, test: dict[str, Any]) -> bool:
    if "equals" in test:
        return text == str(test["equals"])
    if "does_not_equal" in test:
        return text != str(test["does_not_equal"])
    if "contains" in test:
        return str(test["contains"]) in text
    if "does_not_contain" in test:
        return str(test["does_not_contain"]) not in text
    if "starts_with" in test:
        return text.startswith(str(test["starts_with"]))
    if "ends_with" in test:
        return text.endswith(str(test["ends_with"]))
    return _empty_test(text == "", test)


def _number_test(value: Any, test: dict[str, Any]) -> bool:
    if "is_empty" in test or "is_not_empty" in test:
        return _empty_test(value is None, test)
    if value is None:
        return "does_not_equal" in test
    checks: dict[str, Callable[[float, float], bool]] = {
        "equals": lambda a, b: a == b,
        "does_not_equal": lambda a, b: a != b,
        "greater_than": lambda a, b: a > b,
        "less_than": lambda a, b: a < b,
        "greater_than_or_equal_to": lambda a, b: a >= b,
        "less_than_or_equal_to": lambda a, b: a <= b,
    }
    return all(checks[op](value, operand) for op, operand in test.items() if op in checks)


def _select_test(name: str | None, test: dict[str, Any]) -> bool:
    if "equals" in test:
        wanted = test["equals"]
        return name in wanted if isinstance(wanted, list) else name == str(wanted)
    if "does_not_equal" in test:
        return name != str(test["does_not_equal"])
    return _empty_test(name is None, test)


def _date_test(value: datetime | None, test: dict[str, Any]) -> bool:
    if "is_empty" in test or "is_not_empty" in test:
        return _empty_test(value is None, test)
    if value is None:
        return False
    for op, operand in test.items():
        if not isinstance(operand, str):
            continue
        if _date_only(operand):
            day = datetime.fromisoformat(operand).replace(tzinfo=UTC)
            low, high = day, day + timedelta(days=1)
            ok = {
                "equals": low <= value < high,
                "before": value < low,
                "on_or_before": value < high,
                "after": value >= high,
                "on_or_after": value >= low,
            }.get(op, True)
        else:
            moment = _parse_instant(operand)
            ok = {
                "equals": value == moment,
                "before": value < moment,
                "on_or_before": value <= moment,
                "after": value > moment,
                "on_or_after": value >= moment,
            }.get(op, True)
        if not ok:
            return False
    return True


_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/v1/databases/[^/]+$"), "retrieve_database"),
    ("POST", re.compile(r"^/v1/databases$"), "create_database"),
    ("GET", re.compile(r"^/v1/data_sources/[^/]+$"), "retrieve_data_source"),
    ("PATCH", re.compile(r"^/v1/data_sources/[^/]+$"), "update_data_source"),
    ("POST", re.compile(r"^/v1/data_sources/[^/]+/query$"), "query"),
    ("POST", re.compile(r"^/v1/pages$"), "create_page"),
    ("GET", re.compile(r"^/v1/pages/[^/]+$"), "retrieve_page"),
    ("PATCH", re.compile(r"^/v1/pages/[^/]+$"), "update_page"),
    ("GET", re.compile(r"^/v1/blocks/[^/]+/children$"), "list_children"),
    ("GET", re.compile(r"^/v1/views$"), "list_views"),
    ("POST", re.compile(r"^/v1/views$"), "create_view"),
]


def _kind(method: str, path: str) -> str:
    for route_method, pattern, kind in _ROUTES:
        if method == route_method and pattern.match(path.rstrip("/")):
            return kind
    return "other"


def _json(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"Content-Type": JSON_TYPE, **(headers or {})},
        content=json.dumps(body).encode(),
    )

"""Create (or bring up to date) the Notion databases under a parent page, exactly as DESIGN.md
describes them. Idempotent: databases are found by title under the page; missing properties and
select options are added; nothing is ever removed or renamed, so marketers' additions survive."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from notion_queue.errors import PermanentError
from notion_queue.models import Status
from notion_queue.sequences import load_catalog
from notion_queue.store import notion_schema as s
from notion_queue.store.notion_gateway import NotionGateway

EMAIL_QUEUE = "Email Queue"
TEMPLATES = "Templates"
CONTACTS = "Contacts"
WORKERS = "Workers"
ANALYTICS = "Email Analytics"


@dataclass
class SetupReport:
    database_ids: dict[str, str] = field(default_factory=dict)
    data_source_ids: dict[str, str] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # databases this run made

    def env_lines(self) -> list[str]:
        names = {
            EMAIL_QUEUE: "NOTION_EMAIL_QUEUE_DB_ID",
            TEMPLATES: "NOTION_TEMPLATES_DB_ID",
            CONTACTS: "NOTION_CONTACTS_DB_ID",
            WORKERS: "NOTION_WORKERS_DB_ID",
            ANALYTICS: "NOTION_ANALYTICS_DB_ID",
        }
        return [f"{names[t]}={self.database_ids[t]}" for t in names if t in self.database_ids]


def _views() -> list[dict[str, Any]]:
    """Saved views for the Email Queue: one per status an operator acts on (as rq's registries)."""

    def status_is(status: Status) -> dict[str, Any]:
        return {"property": s.STATUS, "select": {"equals": status.value}}

    by_time = [{"property": s.SCHEDULED_TIME, "direction": "ascending"}]
    return [
        {"name": "Due next", "filter": status_is(Status.QUEUED), "sorts": by_time},
        # A review sequence's rows: set Status to queued to approve one, cancelled to drop it.
        {"name": "Needs review", "filter": status_is(Status.REVIEW), "sorts": by_time},
        {
            "name": "Failed",
            "filter": status_is(Status.FAILED),
            "sorts": [{"property": s.SCHEDULED_TIME, "direction": "descending"}],
        },
        {"name": "Paused", "filter": status_is(Status.PAUSED), "sorts": by_time},
        # Rows the system holds until the guest rebooks: a marketer sees them apart from the
        # ones they paused (and `notion-queue resume` leaves them alone).
        {"name": "Waiting for a rebooking", "filter": status_is(Status.WAITING), "sorts": by_time},
        {
            "name": "Sent",
            "filter": status_is(Status.SENT),
            "sorts": [{"property": s.SENT_AT, "direction": "descending"}],
        },
        {
            "name": "Cancelled and skipped",
            "filter": {"or": [status_is(Status.CANCELLED), status_is(Status.SKIPPED)]},
            "sorts": by_time,
        },
    ]


class NotionSetup:
    def __init__(
        self, gateway: NotionGateway, *, progress: Callable[[str], None] | None = None
    ) -> None:
        self.gateway = gateway
        self.progress = progress or (lambda message: None)

    def run(
        self,
        parent_page_id: str,
        *,
        with_analytics: bool = False,
        sequences: Iterable[str] | None = None,
    ) -> SetupReport:
        """`sequences` are the Sequence options (the catalog's names; None: the packaged
        catalog's); names the select lacks are added, the marketers' own are kept."""
        names = list(load_catalog().sequences) if sequences is None else list(sequences)
        report = SetupReport()
        existing = self._child_databases(parent_page_id)
        contacts_ds = self._ensure(report, existing, parent_page_id, CONTACTS, s.CONTACTS_SCHEMA)
        queue_schema = s.email_queue_schema(contacts_ds, names)
        self._ensure(report, existing, parent_page_id, EMAIL_QUEUE, queue_schema)
        self._ensure(report, existing, parent_page_id, TEMPLATES, s.TEMPLATES_SCHEMA)
        self._ensure(report, existing, parent_page_id, WORKERS, s.WORKERS_SCHEMA)
        if with_analytics:
            self._ensure(report, existing, parent_page_id, ANALYTICS, s.analytics_schema(names))
        self._ensure_views(report)
        return report

    def _child_databases(self, page_id: str) -> dict[str, str]:
        found: dict[str, str] = {}
        cursor: str | None = None
        while True:
            kwargs: dict[str, Any] = {"page_size": 100}
            if cursor:
                kwargs["start_cursor"] = cursor
            response = self.gateway.list_block_children(page_id, **kwargs)
            for block in response.get("results", []):
                if block.get("type") == "child_database":
                    found.setdefault(block["child_database"]["title"], block["id"])
            cursor = response.get("next_cursor")
            if not response.get("has_more") or not cursor:
                return found

    def _ensure(
        self,
        report: SetupReport,
        existing: dict[str, str],
        parent_page_id: str,
        title: str,
        schema: dict[str, Any],
    ) -> str:
        found = existing.get(title)
        if found is None:
            self.progress(f"creating {title} database")
            db = self.gateway.create_database(parent_page_id, title, schema)
            if "committed_resource_id" in db:
                raise PermanentError(
                    f"Notion created {title} but did not answer; run the setup again"
                )
            report.changes.append(f"created {title}")
            report.created.append(title)
        else:
            db = self.gateway.retrieve_database(found)
        database_id = str(db["id"])
        data_source_id = str(db["data_sources"][0]["id"])
        report.database_ids[title] = database_id
        report.data_source_ids[title] = data_source_id
        self._add_missing(report, title, data_source_id, schema)
        return data_source_id

    def _add_missing(
        self, report: SetupReport, title: str, data_source_id: str, schema: dict[str, Any]
    ) -> None:
        current = self.gateway.retrieve_data_source(data_source_id)["properties"]
        by_name = {name: prop for name, prop in current.items()}
        patch: dict[str, Any] = {}
        for name, wanted in schema.items():
            kind = next(iter(wanted))
            have = by_name.get(name)
            if have is None:
                if kind == "title":
                    continue  # a data source has exactly one title, whatever it is called
                patch[name] = wanted
                report.changes.append(f"{title}: added property {name}")
            elif have.get("type") != kind:
                report.notes.append(
                    f"{title}: property {name!r} is {have.get('type')}, expected {kind}; "
                    "left as it is (change it in Notion)"
                )
            elif kind == "select":
                options = have["select"].get("options", [])
                names = {o["name"] for o in options}
                missing = [o for o in wanted["select"].get("options", []) if o["name"] not in names]
                if missing:
                    # An options array replaces the options: send the old ones too.
                    kept = [
                        {"name": o["name"], "color": o.get("color", "default")} for o in options
                    ]
                    patch[name] = {"select": {"options": kept + missing}}
                    report.changes.append(
                        f"{title}: {name} gained options {', '.join(o['name'] for o in missing)}"
                    )
        if patch:
            self.progress(f"updating {title} schema")
            self.gateway.update_data_source(data_source_id, patch)

    def _ensure_views(self, report: SetupReport) -> None:
        database_id = report.database_ids[EMAIL_QUEUE]
        data_source_id = report.data_source_ids[EMAIL_QUEUE]
        wanted = _views()
        try:
            have = (
                set()
                if EMAIL_QUEUE in report.created  # a new database has none of ours yet
                else self._view_names(database_id, {v["name"] for v in wanted})
            )
        except PermanentError as exc:
            report.notes.append(
                f"saved views not created ({exc}); add Due next, Failed and Paused by hand"
            )
            return
        for view in wanted:
            if view["name"] in have:
                continue
            self.progress(f"adding view {view['name']}")
            self.gateway.create_view(database_id, data_source_id, type="table", **view)
            report.changes.append(f"{EMAIL_QUEUE}: added view {view['name']}")

    def _view_names(self, database_id: str, wanted: set[str]) -> set[str]:
        """Names of the database's views, as far as `wanted` goes. Listing views answers only
        references ({object, id}), so each view is retrieved for its name; the retrieves stop
        once every wanted name is found."""
        names: set[str] = set()
        cursor: str | None = None
        while True:
            kwargs: dict[str, Any] = {"page_size": 100}
            if cursor:
                kwargs["start_cursor"] = cursor
            listed = self.gateway.list_views(database_id, **kwargs)
            for reference in listed.get("results", []):
                view = self.gateway.retrieve_view(reference["id"])
                if view.get("name"):  # a partial view object carries no name
                    names.add(str(view["name"]))
                if wanted <= names:
                    return names
            cursor = listed.get("next_cursor")
            if not listed.get("has_more") or not cursor:
                return names

"""Shared fixtures: a fixed clock, every QueueStore adapter (Notion through the fake, PostgreSQL
on a throw-away server), mailers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import resend
import structlog

from notion_queue.clock import FakeClock
from notion_queue.intake.drainer import Drainer
from notion_queue.intake.journal import Journal
from notion_queue.intake.processor import IntakeProcessor
from notion_queue.logs import configure_logging
from notion_queue.mail.outbox import OutboxMailer
from notion_queue.mail.resend_mailer import ResendMailer
from notion_queue.models import NewRow, Status, Template
from notion_queue.notion_setup import NotionSetup
from notion_queue.sequences import Catalog, load_catalog
from notion_queue.store.base import QueueStore
from notion_queue.store.notion import NotionStore
from notion_queue.store.notion_gateway import NotionGateway, build_client
from notion_queue.store.postgres import PostgresStore
from notion_queue.store.sqlite import SqliteStore
from notion_queue.templates import TemplateSource, load_packaged_templates
from notion_queue.testing.fake_notion import FakeNotion
from notion_queue.testing.fake_resend import FakeResend
from notion_queue.unsubscribe import UnsubscribeTokens
from notion_queue.worker import Worker, WorkerConfig
from scripts.harness.pg_cluster import Cluster, start_cluster

T0 = datetime(2025, 12, 1, 10, 0, tzinfo=UTC)
NOTION_TOKEN = "secret_test_token_0123456789"


@pytest.fixture(autouse=True)
def _logging() -> Iterator[None]:
    configure_logging("console", "info", [NOTION_TOKEN])
    yield
    structlog.reset_defaults()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@dataclass
class NotionWorld:
    fake: FakeNotion
    store: NotionStore
    database_ids: dict[str, str]
    data_source_ids: dict[str, str]


def make_notion_world(
    clock: FakeClock, *, with_analytics: bool = False, **fake_options: Any
) -> NotionWorld:
    fake = FakeNotion(clock, token=NOTION_TOKEN, **fake_options)
    parent = fake.create_parent_page("Email funnel")
    # Unpaced here, so the fixed clock stays where the test put it; pacing has its own tests.
    gateway = NotionGateway(
        build_client(NOTION_TOKEN, "https://api.notion.com", transport=fake.transport()),
        clock,
        requests_per_second=1000,
        burst=1000,
    )
    report = NotionSetup(gateway).run(parent, with_analytics=with_analytics)
    store = NotionStore(
        gateway,
        email_queue_db_id=report.database_ids["Email Queue"],
        templates_db_id=report.database_ids["Templates"],
        contacts_db_id=report.database_ids["Contacts"],
        workers_db_id=report.database_ids["Workers"],
        analytics_db_id=report.database_ids.get("Email Analytics"),
    )
    store.connect()  # as a started process has, so request counts start from a resolved store
    fake.requests.clear()
    return NotionWorld(fake, store, report.database_ids, report.data_source_ids)


@pytest.fixture
def notion_world(clock: FakeClock) -> NotionWorld:
    return make_notion_world(clock)


@pytest.fixture(params=["sqlite", "notion", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class World:
    store: QueueStore
    fake: FakeNotion | None


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throw-away PostgreSQL server for the session (Debian's binaries; never skipped)."""
    cluster = start_cluster()
    yield cluster
    cluster.stop()


PG_TABLES = (
    "email_queue, contacts, email_analytics, worker_lease, templates, migrated_rows,"
    " pending_batches, rate_slots"
)


@pytest.fixture
def postgres_store(pg_cluster: Cluster) -> Iterator[PostgresStore]:
    """A PostgresStore on an empty queue (the tables emptied, the schema kept)."""
    store = PostgresStore(pg_cluster.url())
    store._query(f"TRUNCATE {PG_TABLES} RESTART IDENTITY")
    yield store
    store.close()


@pytest.fixture
def world(
    backend: str, clock: FakeClock, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[World]:
    if backend == "postgres":
        yield World(request.getfixturevalue("postgres_store"), None)
    elif backend == "sqlite":
        sqlite = SqliteStore(tmp_path / "queue.sqlite3")
        yield World(sqlite, None)
        sqlite.close()
    else:
        notion = make_notion_world(clock)
        yield World(notion.store, notion.fake)


@pytest.fixture
def store(world: World) -> QueueStore:
    """Every test that takes `store` runs on SQLite, on Notion through the fake and on a real
    PostgreSQL."""
    return world.store


class Marketer:
    """Edits a row by hand: in the Notion UI, or in the SQLite file on the embedded default."""

    def __init__(self, world: World) -> None:
        self.world = world

    def set_first_name(self, row_id: str, name: str) -> None:
        if self.world.fake is not None:
            self.world.fake.edit_page(
                row_id, {"First Name": {"rich_text": [{"text": {"content": name}}]}}
            )
        elif isinstance(self.world.store, PostgresStore):
            self.world.store._query(
                "UPDATE email_queue SET first_name = %s WHERE id = %s", (name, row_id)
            )
        else:
            assert isinstance(self.world.store, SqliteStore)
            self.world.store._write(
                "UPDATE email_queue SET first_name = ? WHERE id = ?", (name, row_id)
            )


@pytest.fixture
def marketer(world: World) -> Marketer:
    return Marketer(world)


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog(known_templates=load_packaged_templates())


@pytest.fixture
def outbox(tmp_path: Path, clock: FakeClock) -> OutboxMailer:
    return OutboxMailer(tmp_path / "outbox", clock)


@pytest.fixture
def tokens() -> UnsubscribeTokens:
    return UnsubscribeTokens(b"unsubscribe-secret-for-tests")


WorkerFactory = Callable[..., Worker]


@pytest.fixture
def make_worker(clock: FakeClock, catalog: Catalog, tokens: UnsubscribeTokens) -> WorkerFactory:
    def build(store: QueueStore, mailer: Any, **config: Any) -> Worker:
        return Worker(
            store,
            mailer,
            TemplateSource(store, clock, cache_seconds=config.pop("cache_seconds", 300)),
            clock,
            WorkerConfig(
                sender="BusinessX <hello@businessx.com>",
                public_base_url="https://funnel.businessx.com",
                campaign_variables=catalog.variables,
                event_fields=catalog.fields,
                **config,
            ),
            unsubscribe=tokens,
        )

    return build


def new_row(**overrides: Any) -> NewRow:
    values: dict[str, Any] = {
        "email": "sarah@example.com",
        "first_name": "Sarah",
        "sequence": "lead_nurture",
        "email_number": 1,
        "template_id": "lead_nurture_email_1",
        "scheduled_time": T0,
        "dedupe_key": f"test/{overrides.get('template_id', 'lead_nurture_email_1')}"
        f"/{overrides.get('email', 'sarah@example.com')}/{overrides.get('scheduled_time', T0)}",
        "variables": {"business_name": "Sarah's Salon"},
        "status": Status.QUEUED,
    }
    values.update(overrides)
    return NewRow(**values)


def needs_business_name(store: QueueStore) -> NewRow:
    """A row a marketer's edits broke: the template (edited in Notion) names business_name
    with no default, and the row's Variables (edited too) no longer hold it."""
    store.upsert_template(
        Template(
            "lead_nurture_email_1",
            "A note for {{ business_name }}",
            "<p>Hi {{ first_name }}, about {{ business_name }}.</p>",
        )
    )
    return new_row(variables={})


@pytest.fixture
def intake(
    tmp_path: Path, store: QueueStore, catalog: Catalog, clock: FakeClock
) -> Iterator[tuple[Journal, Drainer]]:
    journal = Journal(tmp_path / "intake.sqlite3")
    drainer = Drainer(journal, IntakeProcessor(store, catalog, clock), clock)
    yield journal, drainer
    journal.close()


@pytest.fixture
def fake_resend(clock: FakeClock) -> FakeResend:
    """Resend's API on the test's clock, at its default 2 requests/s."""
    return FakeResend(clock, api_key="re_test_key", rate_limit=2, burst=2)


@pytest.fixture
def mailer(fake_resend: FakeResend, clock: FakeClock) -> Iterator[ResendMailer]:
    """The real ResendMailer talking to `fake_resend`; the SDK's module globals it sets are
    put back afterwards."""
    saved = (resend.api_key, resend.api_url, resend.default_http_client)
    mailer = ResendMailer("re_test_key", clock, transport=fake_resend.transport())
    yield mailer
    mailer.close()
    resend.api_key, resend.api_url, resend.default_http_client = saved

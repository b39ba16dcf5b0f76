"""Build the pieces from Settings: the one place that knows which adapter goes with which name."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from notion_queue.batch_journal import BatchJournal, FileBatchJournal
from notion_queue.catalog_templates import stored_templates_check
from notion_queue.clock import Clock
from notion_queue.event_fields import url_field_names
from notion_queue.intake.journal import Journal
from notion_queue.link_guard import check_template_links, link_targets
from notion_queue.mail.base import Mailer
from notion_queue.mail.outbox import OutboxMailer
from notion_queue.mail.resend_mailer import ResendMailer
from notion_queue.pacing import Pacer
from notion_queue.sequences import Catalog, load_catalog
from notion_queue.settings import Settings
from notion_queue.store.base import QueueStore
from notion_queue.store.notion import NotionStore
from notion_queue.store.notion_gateway import NotionGateway, build_client
from notion_queue.store.sqlite import SqliteStore
from notion_queue.templates import TemplateSource, load_packaged_templates
from notion_queue.test_sends import template_jobs
from notion_queue.unsubscribe import UnsubscribeTokens, load_secret
from notion_queue.worker import Worker, WorkerConfig, batch_size_for, new_worker_id

JOURNAL_FILE = "intake.sqlite3"  # in STATE_DIR


def build_store(
    settings: Settings, clock: Clock, *, notion_transport: httpx.BaseTransport | None = None
) -> QueueStore:
    if settings.queue_backend == "sqlite":
        return SqliteStore(settings.sqlite_path)
    if settings.queue_backend == "postgres":
        from notion_queue.store.postgres import PostgresStore  # psycopg only when it is used

        assert settings.database_url is not None  # Settings checked it
        return PostgresStore(settings.database_url.get_secret_value())
    assert settings.notion_token is not None  # Settings checked it
    client = build_client(
        settings.notion_token.get_secret_value(),
        settings.notion_api_base_url,
        transport=notion_transport,
    )
    gateway = NotionGateway(client, clock, requests_per_second=settings.notion_requests_per_second)
    return NotionStore(
        gateway,
        email_queue_db_id=str(settings.notion_email_queue_db_id),
        templates_db_id=str(settings.notion_templates_db_id),
        contacts_db_id=str(settings.notion_contacts_db_id),
        workers_db_id=str(settings.notion_workers_db_id),
        analytics_db_id=settings.notion_analytics_db_id,
    )


def open_intake(settings: Settings, clock: Clock) -> tuple[Catalog, QueueStore, Journal]:
    """What the server and its drainer process both open at start: the catalog, the store and
    the intake journal. None of it makes a request: they start while Notion is down, and the
    drainer reaches the store when it answers. Raises NotionQueueError (a bad catalog, a
    damaged file)."""
    return (
        build_catalog(settings),
        build_store(settings, clock),
        Journal(settings.state_dir / JOURNAL_FILE),
    )


def store_connector(store: QueueStore, catalog: Catalog | None = None) -> Callable[[], None] | None:
    """What reaches the store before the drainer applies events: Notion's data sources are
    looked up when Notion answers, not at start-up; PostgreSQL's pool opens (and its schema is
    migrated) when the server answers; then the catalog's templates that are not packaged must be
    Active in the store's Templates. None: nothing to do (SQLite, packaged)."""
    found = getattr(store, "connect", None)
    connect: Callable[[], None] | None = found if callable(found) else None
    templates = (
        stored_templates_check(catalog, load_packaged_templates(), store)
        if catalog is not None
        else None
    )
    if connect is None or templates is None:
        return connect or templates
    steps: tuple[Callable[[], None], ...] = (connect, templates)

    def connect_and_check() -> None:
        for step in steps:
            step()

    return connect_and_check


def build_mailer(
    settings: Settings,
    clock: Clock,
    *,
    resend_transport: httpx.BaseTransport | None = None,
    store: QueueStore | None = None,
) -> Mailer:
    """`store`: the queue the worker serves. On PostgreSQL, whose workers may be many,
    RESEND_REQUESTS_PER_SECOND is the account's rate, and the slots are shared through it."""
    if settings.mail_backend == "outbox":
        return OutboxMailer(settings.outbox_dir, clock)
    assert settings.resend_api_key is not None  # Settings checked it
    return ResendMailer(
        settings.resend_api_key.get_secret_value(),
        clock,
        api_url=settings.resend_api_url,
        transport=resend_transport,
        requests_per_second=settings.resend_requests_per_second,
        pacer=_shared_resend_pacer(settings, clock, store),
    )


def _shared_resend_pacer(
    settings: Settings, clock: Clock, store: QueueStore | None
) -> Pacer | None:
    """The account's Resend rate shared by every PostgreSQL worker; None elsewhere (SQLite and
    Notion run one worker, which paces itself)."""
    if settings.queue_backend != "postgres":
        return None
    from notion_queue.store.postgres import PostgresStore
    from notion_queue.store.postgres_pacing import PostgresPacer

    if not isinstance(store, PostgresStore):
        raise TypeError("a PostgreSQL worker's mailer shares Resend's rate through its store")
    return PostgresPacer(store, clock, "resend", settings.resend_requests_per_second)


def build_catalog(settings: Settings) -> Catalog:
    """The catalog, checked; its templates that are not packaged are checked against the
    store's Templates once it is reached (store_connector, and the worker's start)."""
    packaged = load_packaged_templates()
    catalog = load_catalog(settings.sequences_file)
    check_template_links(
        packaged,
        catalog.template_ids(),
        link_targets(catalog.variables, url_field_names(catalog.fields)),
    )
    return catalog


def build_unsubscribe(settings: Settings) -> UnsubscribeTokens:
    secret = settings.unsubscribe_secret.get_secret_value() if settings.unsubscribe_secret else None
    return UnsubscribeTokens(load_secret(secret, settings.state_dir))


def _send_rate(settings: Settings) -> float | None:
    """Rows per second the worker can finish: each costs a send and a Notion update."""
    limits = []
    if settings.mail_backend == "resend":
        limits.append(settings.resend_requests_per_second)
    if settings.queue_backend == "notion":
        limits.append(settings.notion_requests_per_second)
    return min(limits) if limits else None


def build_batch_journal(
    settings: Settings, store: QueueStore, clock: Clock, worker_id: str
) -> BatchJournal | None:
    """Resend's batch API (100 emails a request) where it is safe: SQLite, which one worker on
    one host serves, keeps a started batch in STATE_DIR until its rows are marked, so a killed
    worker's batch is sent again as it was, never regrouped. PostgreSQL keeps its pending
    batches in the database, each held by one worker (`worker_id`) and taken over by another
    when that one dies, since its workers run on several hosts. Notion stays one at a time: its
    ~3 requests/s for marking rows is the ceiling anyway, and a batch would widen the window
    between sending and marking to half a minute. The outbox has no rate limit to save."""
    if settings.mail_backend != "resend":
        return None
    if settings.queue_backend == "sqlite":
        return FileBatchJournal(settings.state_dir / "batches", clock)
    if settings.queue_backend == "postgres":
        from notion_queue.store.postgres import PostgresStore
        from notion_queue.store.postgres_batches import PostgresBatchJournal

        assert isinstance(store, PostgresStore)
        return PostgresBatchJournal(store, clock, worker_id, settings.claim_ttl_seconds)
    return None


def build_worker(
    settings: Settings,
    clock: Clock,
    store: QueueStore,
    mailer: Mailer,
    catalog: Catalog | None = None,
) -> Worker:
    catalog = catalog or build_catalog(settings)
    worker_id = new_worker_id()
    batches = build_batch_journal(settings, store, clock, worker_id)
    worker = Worker(
        store,
        mailer,
        TemplateSource(store, clock, cache_seconds=settings.template_cache_seconds),
        clock,
        WorkerConfig(
            sender=settings.email_from,
            reply_to=settings.email_reply_to,
            max_attempts=settings.max_attempts,
            poll_interval=settings.poll_interval_seconds,
            public_base_url=settings.public_base_url,
            campaign_variables=catalog.variables,
            event_fields=catalog.fields,
            concurrency=settings.send_concurrency,
            batch_size=settings.resend_batch_size
            if batches
            else batch_size_for(_send_rate(settings)),
            claim_ttl=settings.claim_ttl_seconds,
            default_zone=settings.default_zone,
            # Testing mode ignores windows, so a rehearsal runs in minutes.
            windows={} if settings.testing_mode else catalog.windows(),
        ),
        unsubscribe=build_unsubscribe(settings),
        batches=batches,
        worker_id=worker_id,
    )
    worker.template_jobs = template_jobs(worker, store, catalog)
    return worker

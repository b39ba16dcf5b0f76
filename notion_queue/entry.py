"""The `main()`s behind server.py and worker.py: settings once, then wire and run."""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from notion_queue.clock import SystemClock
from notion_queue.errors import ConfigError, NotionQueueError, RetryableError
from notion_queue.logs import configure_logging, get_logger
from notion_queue.private_files import private_umask
from notion_queue.production import exit_if_unsafe_in_production
from notion_queue.settings import Settings, load_settings

if TYPE_CHECKING:
    from notion_queue.mail.base import Mailer
    from notion_queue.store.base import QueueStore
    from notion_queue.worker import Worker


def settings_or_exit() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"notion-queue: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    exit_if_unsafe_in_production(settings)
    configure_logging(settings.log_format, settings.log_level, settings.secrets())
    return settings


def server_main(argv: Sequence[str] | None = None) -> int:
    private_umask()
    parser = argparse.ArgumentParser(prog="server.py", description="The webhook server.")
    parser.parse_args(argv)
    settings = settings_or_exit()

    import uvicorn

    from notion_queue.intake.drainer_process import DrainerProcess
    from notion_queue.web.app import create_app
    from notion_queue.wiring import build_unsubscribe, open_intake

    clock = SystemClock()
    log = get_logger("notion_queue.server")
    try:
        catalog, store, journal = open_intake(settings, clock)
    except NotionQueueError as exc:
        print(f"notion-queue: {exc}", file=sys.stderr)
        return 2
    # The drainer runs in a process of its own (drainer_process.py), started with the app.
    drainer = DrainerProcess(settings.state_dir, clock)
    app = create_app(
        settings,
        journal=journal,
        drainer=drainer,
        clock=clock,
        unsubscribe=build_unsubscribe(settings),
        catalog=catalog,
        templates=store,
        store=store,
    )
    log.info("listening", url=f"http://{settings.host}:{settings.port}")
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler
    # that was there before it: make that one a no-op, so a clean stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=8,
        # request.client is the address X-Forwarded-For gives, when a trusted proxy sends it
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    store.close()
    journal.close()
    return 0


def worker_main(argv: Sequence[str] | None = None) -> int:
    private_umask()
    parser = argparse.ArgumentParser(
        prog="worker.py", description="Send due Email Queue rows and mark them."
    )
    parser.add_argument(
        "--once", action="store_true", help="run one poll cycle and exit (cron, tests)"
    )
    args = parser.parse_args(argv)
    settings = settings_or_exit()

    from notion_queue.catalog_templates import check_stored_templates_waiting
    from notion_queue.templates import load_packaged_templates
    from notion_queue.wakeup import WakeListener
    from notion_queue.wiring import build_catalog, build_mailer, build_store, build_worker
    from notion_queue.worker_lock import WorkerLock
    from notion_queue.worker_status import status_path

    clock = SystemClock()
    log = get_logger("notion_queue.worker")
    queue_name = (
        f"Notion database {settings.notion_email_queue_db_id}"
        if settings.queue_backend == "notion"
        else f"SQLite queue {settings.sqlite_path.resolve()}"
    )
    # PostgreSQL: several workers claim rows (store/postgres.py); no lock file, no lease.
    several = settings.queue_backend == "postgres"
    lock = None if several else WorkerLock(settings.state_dir, queue_name)
    try:
        if lock is not None:
            lock.acquire()
    except NotionQueueError as exc:
        print(f"notion-queue: {exc}", file=sys.stderr)
        return 2
    store: QueueStore | None = None
    mailer: Mailer | None = None
    worker: Worker | None = None
    try:
        catalog = build_catalog(settings)
        store = build_store(settings, clock)
        mailer = build_mailer(settings, clock, store=store)
        worker = build_worker(settings, clock, store, mailer, catalog)
        worker.status.path = status_path(settings.state_dir)
        # Stable across restarts on this host (the lock file already keeps one per host), so
        # a worker that systemd restarts after a crash takes its own lease straight back.
        if not several:
            worker.lease.holder = (
                f"the worker on {socket.gethostname()} ({settings.state_dir.resolve()})"
            )

        received: list[str] = []

        def stop(signum: int, frame: FrameType | None, worker: Worker = worker) -> None:
            # No logging in here: a handler runs between two steps of the main thread, which
            # may be holding the log's lock (seen: a second SIGTERM arriving while the first
            # handler wrote its log line left the worker waiting on that lock for ever).
            received.append(signal.Signals(signum).name)
            worker.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        # The lease claim is the worker's first request: while the store cannot be reached it
        # waits (--once tries once: cron runs it again); a store that refuses us stops it.
        holder = worker.lease.hold(wait=not args.once)
        if holder is not None:
            raise ConfigError(f"another worker already serves {queue_name}: {holder}")
        if worker.stop_event.is_set():
            return 0
        # The store answers now: a template the catalog names must be packaged or Active there.
        check_stored_templates_waiting(
            catalog,
            load_packaged_templates(),
            store,
            pause=worker.stop_event.wait,
            wait=not args.once,
        )
        if worker.stop_event.is_set():
            return 0
        if settings.metrics_port and not args.once:
            from notion_queue import metrics

            metrics.serve(settings.metrics_port, settings.host)
        if args.once:
            summary = worker.run_once()
            log.info("cycle_done", **summary.outcomes)
            return 1 if summary.account_error else 0
        try:  # the server wakes us through it for a row due before our next poll
            worker.wake = WakeListener(settings.state_dir)
        except OSError as exc:
            log.warning("worker_wake_unavailable", reason=str(exc), action="polling only")
        try:
            worker.run_forever()
        finally:
            if worker.wake is not None:
                worker.wake.close()
        if received:
            log.info("stopped_by_signal", signal=received[0])
        return 0
    except RetryableError as exc:  # --once while the store cannot be reached
        print(f"notion-queue: {exc}; try again later", file=sys.stderr)
        return 1
    except NotionQueueError as exc:
        print(f"notion-queue: {exc}", file=sys.stderr)
        return 2
    finally:
        if worker is not None:
            with contextlib.suppress(NotionQueueError):
                worker.lease.release()
        if mailer is not None:
            mailer.close()
        if store is not None:
            store.close()
        if lock is not None:
            lock.release()

"""An idle worker on Notion, counted over an hour of polls at the default 60 s, with every job
the worker runs (the queue, test sends and Preview links, the lease, the template counts)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from notion_queue.clock import FakeClock
from notion_queue.mail.outbox import OutboxMailer
from notion_queue.models import Status
from notion_queue.sequences import Catalog
from notion_queue.test_sends import template_jobs
from notion_queue.worker import Worker
from scripts.harness.idle_cost import idle_cost
from tests.conftest import T0, WorkerFactory, make_notion_world, new_row

NAMES = {"Email Queue": "email_queue", "Templates": "templates", "Contacts": "contacts"}


def idle_worker_over(
    clock: FakeClock,
    outbox: OutboxMailer,
    make_worker: WorkerFactory,
    catalog: Catalog,
    finished_rows: int,
) -> tuple[Worker, dict[str, str], object]:
    world = make_notion_world(clock)
    for i in range(finished_rows):
        world.store.add_row(
            new_row(
                email=f"old{i}@example.com",
                scheduled_time=T0 - timedelta(days=3),
                status=Status.SENT,
                sent_at=T0 - timedelta(days=3),
            )
        )
    worker = make_worker(world.store, outbox, poll_interval=60.0)
    worker.lease.holder = "host/1/abc"  # as worker.py sets it
    worker.template_jobs = template_jobs(worker, world.store, catalog)  # as wiring attaches them
    names = {ds: NAMES.get(name, name) for name, ds in world.data_source_ids.items()}
    clock.advance(hours=1)  # the history is an hour old when the worker starts
    return worker, names, world.fake


@pytest.mark.parametrize("finished_rows", [0, 250])
def test_idle_cost_per_poll_counts_every_job_and_does_not_grow_with_history(
    clock: FakeClock,
    outbox: OutboxMailer,
    make_worker: WorkerFactory,
    catalog: Catalog,
    finished_rows: int,
) -> None:
    worker, names, fake = idle_worker_over(clock, outbox, make_worker, catalog, finished_rows)

    cost = idle_cost(worker, fake, clock, names)  # type: ignore[arg-type]

    assert cost.polls == 60
    assert cost.by_call == {
        "query email_queue": 60 + 6,  # each poll, and a sent row edited? each 10 minutes
        "query templates": 60,  # test sends and Preview links: each 30 s at most, so each poll
        "query contacts": 6,  # a contact edited? each 10 minutes
        "update_page": 12,  # the lease, renewed each 5 minutes
    }
    assert cost.per_poll == 2.4

"""One status table, one door: every Status change notion-queue writes passes `change_status`,
and a change the table refuses is not written and is logged."""

from __future__ import annotations

import argparse
import ast
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from notion_queue import models
from notion_queue.cli import cmd_cancel, cmd_pause, cmd_resume, cmd_retry_failed, cmd_status
from notion_queue.clock import FakeClock
from notion_queue.intake.journal import JournalEntry
from notion_queue.intake.processor import IntakeProcessor
from notion_queue.mail.outbox import OutboxMailer, sent_messages
from notion_queue.models import RowUpdate, Status, can_transition
from notion_queue.sequences import Catalog
from notion_queue.store.base import QueueStore
from notion_queue.transitions import change_status
from tests.conftest import WorkerFactory, needs_business_name, new_row

PACKAGE = Path(__file__).resolve().parent.parent / "notion_queue"


def run_cli(
    command: Callable[..., int], store: QueueStore, clock: FakeClock, **args: object
) -> str:
    lines: list[str] = []
    defaults: dict[str, object] = {"sequence": None, "since_time": None}
    command(store, clock, lines.append, argparse.Namespace(**(defaults | args)))
    return "\n".join(lines)


@pytest.fixture
def refusing_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """A status table that allows no change at all: a writer that passes it writes nothing."""
    monkeypatch.setattr(models, "TRANSITIONS", {status: frozenset() for status in Status})


def refused(logs: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e["current"], e["new"]) for e in logs if e["event"] == "status_change_refused"]


# The table


def test_the_system_holds_a_queued_row_and_only_a_booking_or_a_cancellation_releases_it() -> None:
    assert can_transition(Status.QUEUED, Status.WAITING)
    assert {s for s in Status if can_transition(Status.WAITING, s)} == {
        Status.WAITING,
        Status.QUEUED,
        Status.SKIPPED,
        Status.CANCELLED,
    }
    assert not can_transition(Status.PAUSED, Status.WAITING)  # a marketer's pause stays theirs
    assert not can_transition(Status.WAITING, Status.SENT)  # never sent while held


def test_a_row_with_a_status_typed_by_hand_can_only_be_failed() -> None:
    assert [s for s in Status if can_transition(None, s)] == [Status.FAILED]


def test_waiting_rows_are_open_rows() -> None:
    assert Status.WAITING in models.ACTIVE_STATUSES


# The door


def test_a_sent_row_is_never_requeued_and_the_refusal_is_logged(store: QueueStore) -> None:
    row = store.add_row(new_row(status=Status.SENT))

    with capture_logs() as logs:
        written = change_status(store, row, Status.QUEUED, attempts=0, error_message="")

    assert written is None
    assert store.get_row(row.id).status is Status.SENT
    assert refused(logs) == [("sent", "queued")]
    assert logs[0]["row_id"] == row.id


def test_no_module_sets_a_status_except_through_the_one_door() -> None:
    """Any RowUpdate(status=...) outside notion_queue/transitions.py would skip the table."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "transitions.py":
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "RowUpdate"
                and any(k.arg == "status" for k in node.keywords)
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


# Each writer passes it


def test_cli_cancel_ends_open_rows_and_leaves_sent_ones(
    store: QueueStore, clock: FakeClock
) -> None:
    sent = store.add_row(new_row(status=Status.SENT, template_id="lead_nurture_email_1"))
    queued = store.add_row(new_row(email_number=2, template_id="lead_nurture_email_2"))
    waiting = store.add_row(new_row(email_number=3, template_id="lead_nurture_email_3"))
    store.update_row(waiting.id, RowUpdate(status=Status.WAITING))

    out = run_cli(cmd_cancel, store, clock, email="sarah@example.com")

    assert "Cancelled 2 row(s)" in out
    assert store.get_row(sent.id).status is Status.SENT
    assert store.get_row(queued.id).status is Status.CANCELLED
    assert store.get_row(waiting.id).status is Status.CANCELLED


def test_cli_retry_failed_requeues_failed_rows_only(store: QueueStore, clock: FakeClock) -> None:
    sent = store.add_row(new_row(status=Status.SENT, template_id="lead_nurture_email_1"))
    failed = store.add_row(new_row(email_number=2, template_id="lead_nurture_email_2"))
    store.update_row(failed.id, RowUpdate(status=Status.FAILED, error_message="bad address"))

    out = run_cli(cmd_retry_failed, store, clock)

    assert "Requeued 1 failed row(s)" in out
    assert store.get_row(sent.id).status is Status.SENT
    assert store.get_row(failed.id).status is Status.QUEUED


@pytest.mark.usefixtures("refusing_table")
@pytest.mark.parametrize(
    ("command", "before", "verb"),
    [
        (cmd_pause, Status.QUEUED, "Paused 0"),
        (cmd_resume, Status.PAUSED, "Resumed 0"),
        (cmd_cancel, Status.QUEUED, "Cancelled 0"),
        (cmd_retry_failed, Status.FAILED, "Requeued 0"),
    ],
)
def test_every_cli_command_passes_the_table(
    store: QueueStore,
    clock: FakeClock,
    command: Callable[..., int],
    before: Status,
    verb: str,
) -> None:
    row = store.add_row(new_row())
    store.update_row(row.id, RowUpdate(status=before))

    with capture_logs() as logs:
        out = run_cli(command, store, clock, email="sarah@example.com")

    assert verb in out
    assert store.get_row(row.id).status is before
    assert len(refused(logs)) == 1


@pytest.mark.usefixtures("refusing_table")
def test_the_worker_passes_the_table(
    store: QueueStore, outbox: OutboxMailer, make_worker: WorkerFactory
) -> None:
    row = store.add_row(needs_business_name(store))  # edits broke it: the worker fails it

    with capture_logs() as logs:
        summary = make_worker(store, outbox).run_once()

    assert summary["failed"] == 0 and sent_messages(outbox.folder) == []
    assert store.get_row(row.id).status is Status.QUEUED
    assert refused(logs) == [("queued", "failed")]


@pytest.mark.usefixtures("refusing_table")
def test_intake_exit_rules_pass_the_table(
    store: QueueStore, catalog: Catalog, clock: FakeClock
) -> None:
    row = store.add_row(new_row())
    entry = JournalEntry(
        id="evt_1",
        event_key="unsubscribe:test",
        kind="unsubscribe",
        payload={"email": "sarah@example.com", "source": "link"},
        received_at=clock.now(),
    )

    with capture_logs() as logs:
        applied = IntakeProcessor(store, catalog, clock).apply(entry)

    assert applied.cancelled == 0
    assert store.get_row(row.id).status is Status.QUEUED
    assert refused(logs) == [("queued", "cancelled")]


def test_status_counts_the_rows_the_system_holds(store: QueueStore, clock: FakeClock) -> None:
    row = store.add_row(new_row())
    store.update_row(row.id, RowUpdate(status=Status.WAITING))

    out = run_cli(cmd_status, store, clock)

    assert "1 rows: 1 waiting" in out or "1 unfinished rows: 1 waiting" in out  # Notion
    assert "waiting" in out.splitlines()[2]  # a column of the per-sequence table

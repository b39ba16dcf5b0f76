"""`notion-queue migrate`: moving a queue up to PostgreSQL loses no row, copies none twice, and
resumes after an interruption."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from notion_queue.cli import main
from notion_queue.clock import FakeClock
from notion_queue.migrate import migrate_queue
from notion_queue.models import ContactData, QueueRow, RowUpdate, Status, Template
from notion_queue.store.postgres import PostgresStore
from notion_queue.store.sqlite import SqliteStore
from scripts.harness.pg_cluster import Cluster
from tests.conftest import T0, make_notion_world, new_row

QUEUED = 1000


def snapshot(store: PostgresStore) -> list[dict[str, Any]]:
    return store._query("SELECT * FROM email_queue ORDER BY seq")


def comparable(row: QueueRow) -> tuple[Any, ...]:
    return (
        row.id,
        row.email,
        row.first_name,
        row.sequence,
        row.email_number,
        row.template_id,
        row.scheduled_time,
        row.status_text,
        row.dedupe_key,
        row.variables(),
        row.attempts,
        row.error_message,
    )


def test_notion_to_postgres_copies_every_unfinished_row_once_and_a_rerun_changes_nothing(
    clock: FakeClock, postgres_store: PostgresStore
) -> None:
    world = make_notion_world(clock)
    notion = world.store
    for i in range(QUEUED):
        notion.add_row(
            new_row(email=f"lead{i}@example.com", scheduled_time=T0 + timedelta(minutes=i))
        )
    paused = notion.add_row(new_row(email="held@example.com", dedupe_key="held"))
    notion.update_row(paused.id, RowUpdate(status=Status.PAUSED, attempts=2))
    sent = notion.add_row(new_row(email="done@example.com", dedupe_key="done"))
    notion.update_row(sent.id, RowUpdate(status=Status.SENT, sent_at=T0))
    notion.upsert_contact(ContactData(email="lead1@example.com", first_name="Lee"))
    notion.upsert_contact(ContactData(email="gone@example.com", unsubscribed=True))
    notion.upsert_template(Template("spring_offer", "Spring, {{ first_name }}", "<p>Hi</p>"))
    source_rows = {r.id: r for r in notion.all_rows() if r.status is not Status.SENT}
    progress = io.StringIO()

    first = migrate_queue(notion, "notion:queue", postgres_store, stream=progress)
    after_first = snapshot(postgres_store)
    second = migrate_queue(notion, "notion:queue", postgres_store, stream=io.StringIO())

    assert (first.copied, first.already_there, first.unfinished) == (QUEUED + 1, 0, QUEUED + 1)
    assert (second.copied, second.already_there) == (0, QUEUED + 1)
    assert second.contacts_changed == 0 and second.templates_changed == 0
    assert snapshot(postgres_store) == after_first  # the re-run changed nothing
    copied = {r.id: r for r in postgres_store.all_rows()}
    assert sorted(map(comparable, copied.values())) == sorted(map(comparable, source_rows.values()))
    assert copied[paused.id].status is Status.PAUSED and copied[paused.id].attempts == 2
    assert sent.id not in copied
    lee = postgres_store.find_contact("lead1@example.com")
    assert lee is not None and lee.first_name == "Lee"
    [lee_row] = [r for r in copied.values() if r.email == "lead1@example.com"]
    assert lee_row.contact_id == lee.id  # linked to the contact in PostgreSQL
    assert postgres_store.unsubscribed_emails() == {"gone@example.com"}
    assert "spring_offer" in postgres_store.all_templates()
    lines = progress.getvalue().splitlines()  # not a terminal: a line per hundred rows
    assert (
        lines[0] == f"  rows 100/{QUEUED + 1}" and lines[-1] == f"  rows {QUEUED + 1}/{QUEUED + 1}"
    )
    assert len(lines) == 11


class Interrupted(Exception):
    pass


def test_an_interrupted_migration_resumes_and_copies_no_row_twice(
    tmp_path: Path, postgres_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite = SqliteStore(tmp_path / "queue.sqlite3")
    for i in range(50):
        sqlite.add_row(new_row(email=f"lead{i}@example.com"))
    real_import = postgres_store.import_row
    calls = 0

    def dies_after_twenty(source: str, source_id: str, row: QueueRow) -> bool:
        nonlocal calls
        calls += 1
        if calls > 20:
            raise Interrupted  # the power went out
        return real_import(source, source_id, row)

    monkeypatch.setattr(postgres_store, "import_row", dies_after_twenty)
    with pytest.raises(Interrupted):
        migrate_queue(sqlite, "sqlite:q", postgres_store, stream=io.StringIO())
    monkeypatch.setattr(postgres_store, "import_row", real_import)
    resumed = migrate_queue(sqlite, "sqlite:q", postgres_store, stream=io.StringIO())
    sqlite.close()

    assert (resumed.copied, resumed.already_there) == (30, 20)
    keys = [r.dedupe_key for r in postgres_store.all_rows()]
    assert len(keys) == 50 and len(set(keys)) == 50


def test_the_migrate_command_moves_the_sqlite_queue_and_says_what_it_did(
    tmp_path: Path,
    pg_cluster: Cluster,
    postgres_store: PostgresStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clock: FakeClock,
) -> None:
    queue = tmp_path / "queue.sqlite3"
    sqlite = SqliteStore(queue)
    sqlite.add_row(new_row())
    sqlite.close()
    monkeypatch.setenv("SQLITE_PATH", str(queue))
    monkeypatch.setenv("DATABASE_URL", pg_cluster.url())
    monkeypatch.setenv("STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("QUEUE_BACKEND", raising=False)

    code = main(["migrate", "--from", "sqlite", "--to", "postgres"], clock=clock)
    again = main(["migrate", "--from", "sqlite", "--to", "postgres"], clock=clock)

    out, err = capsys.readouterr()
    assert (code, again) == (0, 0)
    assert "1 rows copied, 0 copied before" in out and "0 rows copied, 1 copied before" in out
    assert "rows 1/1" in err  # progress on stderr
    assert [r.email for r in postgres_store.all_rows()] == ["sarah@example.com"]


def test_commands_on_postgres_name_the_store_without_its_password(
    tmp_path: Path,
    pg_cluster: Cluster,
    postgres_store: PostgresStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clock: FakeClock,
) -> None:
    postgres_store.add_row(new_row())
    monkeypatch.setenv("QUEUE_BACKEND", "postgres")
    monkeypatch.setenv("DATABASE_URL", pg_cluster.url().replace("postgres@", "postgres:pw-s3cret@"))
    monkeypatch.setenv("STATE_DIR", str(tmp_path / "state"))

    code = main(["status"], clock=clock)

    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines()[0] == "Store: PostgreSQL queue (DATABASE_URL)"
    assert "pw-s3cret" not in out + err
    assert "queued" in out

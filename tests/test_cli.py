"""`notion-queue` as an operator meets it: which store it read, names it does not know, dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notion_queue.cli import main
from notion_queue.cli_dates import parse_since
from notion_queue.clock import FakeClock
from notion_queue.models import Status, Template
from notion_queue.store.sqlite import SqliteStore
from tests.conftest import NOTION_TOKEN, make_notion_world, new_row


@dataclass
class Result:
    code: int
    out: list[str]
    err: str


class Cli:
    """Runs `notion-queue` in-process in an empty folder, on the settings the test put there."""

    def __init__(self, folder: Path, capsys: pytest.CaptureFixture[str], clock: FakeClock):
        self.folder = folder
        self.capsys = capsys
        self.clock = clock

    def __call__(self, *args: str) -> Result:
        lines: list[str] = []
        self.capsys.readouterr()
        code = main(list(args), out=lines.append, clock=self.clock)
        return Result(code, lines, self.capsys.readouterr().err)

    @property
    def queue_file(self) -> Path:
        return (self.folder / "var" / "queue.sqlite3").resolve()


@pytest.fixture
def cli(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clock: FakeClock,
) -> Cli:
    import os

    for name in list(os.environ):
        if name.startswith(("NOTION_", "RESEND_", "QUEUE_", "SQLITE_", "MAIL_", "STATE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return Cli(tmp_path, capsys, clock)


def enqueue_sarah(cli: Cli, *extra: str) -> Result:
    return cli(
        "enqueue",
        "lead_nurture",
        "--email",
        "sarah@example.com",
        "--var",
        "first_name=Sarah",
        *extra,
    )


# ------------------------------------------------------------------ which store it read


def test_status_from_a_fresh_folder_names_the_missing_queue_file_and_creates_none(cli: Cli) -> None:
    result = cli("status")

    assert result.code == 0
    assert result.out[0] == (
        f"Store: SQLite queue {cli.queue_file} (does not exist yet: SQLITE_PATH must name "
        "the queue file the server and worker use)"
    )
    assert "The queue is empty." in result.out
    assert not cli.queue_file.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["pause", "sarah@example.com"],
        ["resume", "sarah@example.com"],
        ["cancel", "sarah@example.com"],
        ["retry-failed"],
        ["preview", "lead_nurture_email_1", "--email", "s@example.com", "--var", "first_name=S"],
    ],
)
def test_every_command_names_the_store_it_read_first(cli: Cli, command: list[str]) -> None:
    first = enqueue_sarah(cli)
    assert first.out[0] == f"Store: SQLite queue {cli.queue_file} (does not exist yet: creating it)"

    result = cli(*command)

    assert result.code == 0, result.err
    assert result.out[0] == f"Store: SQLite queue {cli.queue_file}"


def test_sqlite_path_from_the_settings_is_shown_resolved(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQLITE_PATH", "elsewhere/../real.sqlite3")
    enqueue_sarah(cli)

    result = cli("status")

    assert result.out[0] == f"Store: SQLite queue {(cli.folder / 'real.sqlite3').resolve()}"
    assert "5 rows: 5 queued" in result.out[1]


def test_commands_that_change_nothing_leave_a_missing_queue_file_missing(cli: Cli) -> None:
    for command in (["pause", "a@example.com"], ["cancel", "a@example.com"], ["retry-failed"]):
        assert cli(*command).code == 0
    assert not cli.queue_file.exists()


# ------------------------------------------------------------------ enqueue follows the webhooks


def test_enqueue_twice_does_not_start_a_running_sequence_again(cli: Cli) -> None:
    assert enqueue_sarah(cli).code == 0

    again = enqueue_sarah(cli)

    assert again.code == 1
    assert "lead_nurture is already running for sarah@example.com" in again.err
    assert "--force" in again.err
    store = SqliteStore(cli.queue_file)
    assert len(store.rows_for_email("sarah@example.com")) == 5
    store.close()


def test_enqueue_with_force_starts_a_second_run(cli: Cli) -> None:
    enqueue_sarah(cli)

    forced = enqueue_sarah(cli, "--force")

    assert forced.code == 0, forced.err
    store = SqliteStore(cli.queue_file)
    assert len(store.rows_for_email("sarah@example.com")) == 10
    store.close()


def test_enqueue_starts_again_once_the_earlier_run_is_cancelled(cli: Cli) -> None:
    enqueue_sarah(cli)
    cli("cancel", "sarah@example.com", "--sequence", "lead_nurture")

    assert enqueue_sarah(cli).code == 0


# ------------------------------------------------------------------ names it does not know


def test_cancel_with_an_unknown_sequence_lists_the_sequences_and_changes_nothing(cli: Cli) -> None:
    enqueue_sarah(cli)

    result = cli("cancel", "sarah@example.com", "--sequence", "nosuch")

    assert result.code == 2
    assert "sequence 'nosuch' is not in the catalog" in result.err
    assert "lead_nurture" in result.err and "precall_prep" in result.err
    assert "5 rows: 5 queued" in cli("status").out[1]


def test_enqueue_with_an_unknown_sequence_lists_the_sequences(cli: Cli) -> None:
    result = cli("enqueue", "nosuch", "--email", "a@example.com")

    assert result.code == 2
    assert "sequence 'nosuch' is not in the catalog" in result.err
    assert "onboarding" in result.err
    assert not cli.queue_file.exists()


def test_preview_of_an_unknown_template_lists_the_templates(cli: Cli) -> None:
    result = cli("preview", "nosuch", "--email", "sarah@example.com")

    assert result.code == 2
    assert "template 'nosuch' does not exist" in result.err
    assert "christmas_email_1" in result.err and "precall_prep_email_3" in result.err
    assert "Status" not in result.err


def test_on_notion_the_store_is_the_database_and_templates_include_the_templates_database(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    world = make_notion_world(clock)
    world.store.upsert_template(
        Template("spring_offer", "Spring is here, {{ first_name }}", "<p>Hi {{ first_name }}</p>")
    )
    with world.fake.serve() as url:
        monkeypatch.setenv("QUEUE_BACKEND", "notion")
        monkeypatch.setenv("NOTION_TOKEN", NOTION_TOKEN)
        monkeypatch.setenv("NOTION_API_BASE_URL", url)
        monkeypatch.setenv("NOTION_EMAIL_QUEUE_DB_ID", world.database_ids["Email Queue"])
        monkeypatch.setenv("NOTION_TEMPLATES_DB_ID", world.database_ids["Templates"])
        monkeypatch.setenv("NOTION_CONTACTS_DB_ID", world.database_ids["Contacts"])
        monkeypatch.setenv("NOTION_WORKERS_DB_ID", world.database_ids["Workers"])
        unknown = cli("preview", "nosuch", "--email", "sarah@example.com")
        known = cli(
            "preview", "spring_offer", "--email", "sarah@example.com", "--var", "first_name=Sam"
        )

    assert unknown.code == 2
    assert "spring_offer" in unknown.err and "christmas_email_1" in unknown.err
    assert known.code == 0, known.err
    assert known.out[0] == f"Store: Notion database {world.database_ids['Email Queue']}"
    assert known.out[1] == "Subject: Spring is here, Sam"


# ------------------------------------------------------------------ --since


NOW = datetime(2025, 12, 3, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", datetime(2025, 12, 3, tzinfo=UTC)),
        ("Yesterday", datetime(2025, 12, 2, tzinfo=UTC)),
        ("3d", NOW - timedelta(days=3)),
        ("12h", NOW - timedelta(hours=12)),
        ("2025-12-01", datetime(2025, 12, 1, tzinfo=UTC)),
        ("2025-12-01T14:00", datetime(2025, 12, 1, 14, 0, tzinfo=UTC)),
        ("2025-12-01 14:00:00", datetime(2025, 12, 1, 14, 0, tzinfo=UTC)),
        ("2025-12-01T14:00:00+01:00", datetime(2025, 12, 1, 13, 0, tzinfo=UTC)),
        ("2025-12-01T14:00:00Z", datetime(2025, 12, 1, 14, 0, tzinfo=UTC)),
    ],
)
def test_since_accepts_days_hours_and_iso_times(text: str, expected: datetime) -> None:
    parsed = parse_since(text, NOW)

    assert parsed == expected
    assert parsed.tzinfo is not None


@pytest.mark.parametrize("text", ["yest", "last week", "2025-13-01", "-3d", "3x", ""])
def test_since_refuses_other_forms_and_says_which_are_accepted(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_since(text, NOW)

    message = str(caught.value)
    for form in ("today", "yesterday", "3d", "12h", "2025-12-01", "without a zone: UTC"):
        assert form in message


def test_retry_failed_since_yesterday_requeues_only_rows_since_yesterday(cli: Cli) -> None:
    cli.clock.set(NOW)
    store = SqliteStore(cli.queue_file)
    recent = store.add_row(
        new_row(status=Status.FAILED, scheduled_time=NOW - timedelta(hours=20), dedupe_key="a")
    )
    old = store.add_row(
        new_row(status=Status.FAILED, scheduled_time=NOW - timedelta(days=3), dedupe_key="b")
    )

    result = cli("retry-failed", "--since", "yesterday")

    assert result.code == 0, result.err
    assert store.get_row(recent.id).status is Status.QUEUED
    assert store.get_row(old.id).status is Status.FAILED
    store.close()


def test_retry_failed_with_a_date_it_cannot_read_exits_2_naming_the_forms(cli: Cli) -> None:
    result = cli("retry-failed", "--since", "yest")

    assert result.code == 2
    assert "--since 'yest'" in result.err and "yesterday" in result.err
    assert "Expected 4 digits" not in result.err


def test_templates_check_renders_templates_seeded_as_notion_documents(cli: Cli) -> None:
    """Seeded templates have an empty HTML Body (the page is the email): the check must render
    them as the worker sends them, not as empty bodies."""
    from notion_queue.seeding import seed_templates

    store = SqliteStore(cli.queue_file)
    seed_templates(store)
    store.close()

    result = cli("templates", "check")

    assert result.code == 0, result.out
    assert not [line for line in result.out if line.startswith("FAIL")]


def test_enqueue_without_a_var_a_template_needs_is_refused_naming_it(cli: Cli) -> None:
    cli.queue_file.parent.mkdir(parents=True)
    store = SqliteStore(cli.queue_file)
    store.upsert_template(  # a marketer's template, in the store: it needs business_name
        Template("lead_nurture_email_1", "For {{ business_name }}", "<p>Hi {{ first_name }}</p>")
    )
    store.close()
    base = ("enqueue", "lead_nurture", "--email", "sarah@example.com", "--var", "first_name=S")

    refused = cli(*base)
    bad_zone = cli(*base, "--var", "business_name=Salon", "--var", "timezone=Mars/Base")
    accepted = cli(*base, "--var", "business_name=Salon", "--var", "timezone=Europe/Berlin")

    assert refused.code == 2
    assert "business_name: is required" in refused.err
    assert "add --var business_name=..." in refused.err
    assert bad_zone.code == 2 and "--var timezone: must be an IANA" in bad_zone.err
    assert accepted.code == 0
    store = SqliteStore(cli.queue_file)
    rows = store.rows_for_email("sarah@example.com")
    contact = store.find_contact("sarah@example.com")
    store.close()
    assert len(rows) == 5 and {r.variables()["timezone"] for r in rows} == {"Europe/Berlin"}
    assert contact is not None and contact.time_zone == "Europe/Berlin"

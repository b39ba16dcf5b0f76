"""scripts/setup_notion.py, scripts/seed_templates.py and the notion-queue command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from notion_queue.clock import FakeClock
from notion_queue.errors import ConfigError
from notion_queue.models import Status
from notion_queue.notion_setup import NotionSetup
from notion_queue.seeding import seed_templates
from notion_queue.sequences import load_catalog
from notion_queue.settings import load_settings
from notion_queue.store import notion_schema
from notion_queue.store.notion_gateway import NotionGateway, build_client
from notion_queue.templates import load_packaged_templates
from notion_queue.testing.fake_notion import FakeNotion
from tests.conftest import NOTION_TOKEN, make_notion_world, new_row

ROOT = Path(__file__).resolve().parent.parent


def gateway_for(fake: FakeNotion, clock: FakeClock) -> NotionGateway:
    client = build_client(NOTION_TOKEN, "https://api.notion.com", transport=fake.transport())
    return NotionGateway(client, clock, requests_per_second=1000, burst=1000)


def test_setup_creates_the_design_schema_and_rerunning_changes_nothing(clock: FakeClock) -> None:
    fake = FakeNotion(clock, token=NOTION_TOKEN)
    parent = fake.create_parent_page("Funnel")
    setup = NotionSetup(gateway_for(fake, clock))

    first = setup.run(parent, with_analytics=True)
    fake.requests.clear()
    second = setup.run(parent, with_analytics=True)

    assert set(first.database_ids) == {
        "Email Queue",
        "Templates",
        "Contacts",
        "Workers",
        "Email Analytics",
    }
    assert second.changes == [] and second.database_ids == first.database_ids
    assert fake.count("create_database") == 0 and fake.count("update_data_source") == 0
    queue = fake.data_source(first.data_source_ids["Email Queue"])["properties"]
    expected = notion_schema.email_queue_schema("x")
    assert set(queue) == set(expected)
    assert {name: p["type"] for name, p in queue.items()} == {
        name: next(iter(config)) for name, config in expected.items()
    }
    status_options = {o["name"]: o["color"] for o in queue["Status"]["select"]["options"]}
    assert status_options == {s.value: notion_schema.STATUS_COLOURS[s] for s in Status}
    assert queue["Contact"]["relation"]["data_source_id"] == first.data_source_ids["Contacts"]
    assert "created Email Queue" in first.changes
    assert any("added view Due next" in c for c in first.changes)
    assert any("added view Failed" in c for c in first.changes)
    assert any("added view Paused" in c for c in first.changes)
    assert first.env_lines()[0] == f"NOTION_EMAIL_QUEUE_DB_ID={first.database_ids['Email Queue']}"


def test_setup_creates_the_workers_database_for_the_lease_and_prints_its_line(
    clock: FakeClock,
) -> None:
    fake = FakeNotion(clock, token=NOTION_TOKEN)
    parent = fake.create_parent_page("Funnel")
    setup = NotionSetup(gateway_for(fake, clock))

    first = setup.run(parent)
    second = setup.run(parent)

    assert "created Workers" in first.changes and second.changes == []
    workers = fake.data_source(first.data_source_ids["Workers"])["properties"]
    assert {name: p["type"] for name, p in workers.items()} == {
        "Queue": "title",
        "Holder": "rich_text",
        "Lease Until": "date",
        "Renewed At": "date",
    }
    assert f"NOTION_WORKERS_DB_ID={first.database_ids['Workers']}" in first.env_lines()


def test_an_install_from_before_the_workers_database_is_told_to_rerun_the_setup() -> None:
    ids = {
        f"notion_{name}_db_id": "0123456789abcdef0123456789abcdef"
        for name in ("email_queue", "templates", "contacts")
    }
    with pytest.raises(ConfigError) as raised:
        load_settings(_env_file=None, queue_backend="notion", notion_token="secret_x", **ids)

    assert str(raised.value) == (
        "NOTION_WORKERS_DB_ID is required when QUEUE_BACKEND=notion; re-run "
        "scripts/setup_notion.py, which creates the Workers database (the worker's lease) and "
        "prints the line to add"
    )


VIEW_NAMES = [
    "Due next",
    "Needs review",
    "Failed",
    "Paused",
    "Waiting for a rebooking",
    "Sent",
    "Cancelled and skipped",
]


def test_setup_run_three_times_leaves_the_seven_saved_views_once(clock: FakeClock) -> None:
    fake = FakeNotion(clock, token=NOTION_TOKEN)
    parent = fake.create_parent_page("Funnel")
    setup = NotionSetup(gateway_for(fake, clock))

    first = setup.run(parent)
    first_views = fake.count("list_views") + fake.count("retrieve_view")
    fake.requests.clear()
    setup.run(parent)
    setup.run(parent)

    views = fake.views(first.database_ids["Email Queue"])
    assert sorted(v["name"] for v in views) == sorted(VIEW_NAMES)
    assert fake.count("create_view") == 0
    # A database made in this run has none of our views yet: nothing to look up. A re-run reads
    # the list once and each view at most once.
    assert first_views == 0
    assert fake.count("list_views") == 2 and fake.count("retrieve_view") <= 2 * len(VIEW_NAMES)


def test_setup_adds_only_the_saved_views_that_are_missing(clock: FakeClock) -> None:
    fake = FakeNotion(clock, token=NOTION_TOKEN)
    parent = fake.create_parent_page("Funnel")
    setup = NotionSetup(gateway_for(fake, clock))
    report = setup.run(parent)
    database_id = report.database_ids["Email Queue"]
    fake.delete_view(next(v["id"] for v in fake.views(database_id) if v["name"] == "Paused"))

    again = setup.run(parent)

    assert again.changes == ["Email Queue: added view Paused"]
    assert sorted(v["name"] for v in fake.views(database_id)) == sorted(VIEW_NAMES)


def test_setup_adds_what_is_missing_and_keeps_what_marketers_added(clock: FakeClock) -> None:
    fake = FakeNotion(clock, token=NOTION_TOKEN)
    parent = fake.create_parent_page()
    fake.create_database(
        parent,
        "Email Queue",
        {
            "Name": {"title": {}},
            "Status": {"select": {"options": [{"name": "queued", "color": "blue"}]}},
            "Owner": {"rich_text": {}},
        },
    )
    report = NotionSetup(gateway_for(fake, clock)).run(parent)

    queue = fake.data_source(report.data_source_ids["Email Queue"])["properties"]
    assert "Owner" in queue and "Scheduled Time" in queue
    assert {o["name"] for o in queue["Status"]["select"]["options"]} == {s.value for s in Status}
    assert any("Status gained options" in c for c in report.changes)


def test_setup_gives_the_status_select_a_waiting_option_and_its_own_view(clock: FakeClock) -> None:
    fake = FakeNotion(clock, token=NOTION_TOKEN)
    parent = fake.create_parent_page()
    report = NotionSetup(gateway_for(fake, clock)).run(parent)

    queue = fake.data_source(report.data_source_ids["Email Queue"])["properties"]
    options = {o["name"]: o["color"] for o in queue["Status"]["select"]["options"]}
    assert options["waiting"] == "orange" and options["paused"] == "yellow"
    waiting = next(
        v for v in fake.views(report.database_ids["Email Queue"]) if v["name"].startswith("Waiting")
    )
    assert waiting["filter"] == {"property": "Status", "select": {"equals": "waiting"}}


def test_setup_takes_the_sequence_options_from_the_catalog(clock: FakeClock) -> None:
    fake = FakeNotion(clock, token=NOTION_TOKEN)
    parent = fake.create_parent_page()
    setup = NotionSetup(gateway_for(fake, clock))
    packaged = list(load_catalog().sequences)
    first = setup.run(parent, with_analytics=True)

    again = setup.run(parent, with_analytics=True, sequences=[*packaged, "webinar_followup"])

    for title in ("Email Queue", "Email Analytics"):
        sequence = fake.data_source(first.data_source_ids[title])["properties"]["Sequence"]
        names = [o["name"] for o in sequence["select"]["options"]]
        assert names == [*packaged, "webinar_followup"], title
    assert "Email Queue: Sequence gained options webinar_followup" in again.changes


def test_a_row_of_a_sequence_the_select_lacks_still_saves(clock: FakeClock) -> None:
    """Notion adds an unknown select option on write (reference/notion-api.md §2.2): a sequence
    added to SEQUENCES_FILE after setup ran needs no schema change to be queued."""
    world = make_notion_world(clock)

    row = world.store.add_row(new_row(sequence="webinar_followup"))

    assert world.store.get_row(row.id).sequence == "webinar_followup"


def test_seeding_templates_is_idempotent_and_shows_progress(clock: FakeClock) -> None:
    world = make_notion_world(clock)
    seen: list[str] = []

    first = seed_templates(world.store, progress=lambda i, n, t, r: seen.append(f"{i}/{n} {t} {r}"))
    second = seed_templates(world.store)

    total = len(load_packaged_templates())
    assert first == {"created": total, "updated": 0, "unchanged": 0, "kept": 0}
    assert second == {"created": 0, "updated": 0, "unchanged": total, "kept": 0}
    assert seen[0].startswith(f"1/{total} ") and seen[-1].startswith(f"{total}/{total} ")


def test_packaged_templates_all_render_with_the_seed_payloads() -> None:
    from notion_queue.sequences import load_catalog
    from notion_queue.template_check import check_templates

    templates = load_packaged_templates()
    catalog = load_catalog(known_templates=templates)
    results = check_templates(catalog, templates)

    assert [r for r in results if r.problem] == []
    assert len(results) == len(catalog.template_ids()) == 22


def test_templates_check_catches_a_variable_no_event_provides() -> None:
    from notion_queue.models import Template
    from notion_queue.sequences import load_catalog
    from notion_queue.template_check import check_templates

    templates = load_packaged_templates()
    templates["christmas_email_3"] = Template(
        "christmas_email_3", "Hi {{ frist_name }}", "<p>x</p>"
    )
    results = check_templates(load_catalog(known_templates=templates), templates)

    [bad] = [r for r in results if r.problem]
    assert bad.template_id == "christmas_email_3"
    assert bad.problem == "missing template variable: frist_name"


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTION_", "RESEND_"))}
    env.update(SQLITE_PATH=str(tmp_path / "q.sqlite3"), STATE_DIR=str(tmp_path / "state"))
    return subprocess.run(
        [sys.executable, "-m", "notion_queue.cli", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_templates_check_passes(tmp_path: Path) -> None:
    result = cli(tmp_path, "templates", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "22 of 22 templates render" in result.stdout


def test_cli_status_enqueue_pause_resume_cancel_retry(tmp_path: Path) -> None:
    from notion_queue.models import RowUpdate
    from notion_queue.store.sqlite import SqliteStore

    assert "The queue is empty." in cli(tmp_path, "status").stdout
    enqueued = cli(
        tmp_path,
        "enqueue",
        "lead_nurture",
        "--email",
        "Sarah@Example.com",
        "--var",
        "first_name=Sarah",
    )
    assert enqueued.returncode == 0, enqueued.stderr
    assert "Enqueued 5 row(s) of lead_nurture for sarah@example.com." in enqueued.stdout

    status = cli(tmp_path, "status").stdout
    assert "5 rows: 5 queued" in status and "lead_nurture" in status
    assert "Next due: lead_nurture_email_1 → sarah@example.com" in status

    assert "Paused 5 row(s)" in cli(tmp_path, "pause", "sarah@example.com").stdout
    assert "5 rows: 5 paused" in cli(tmp_path, "status").stdout
    assert "Resumed 5 row(s)" in cli(tmp_path, "resume", "sarah@example.com").stdout

    store = SqliteStore(tmp_path / "q.sqlite3")
    first = store.rows_for_email("sarah@example.com")[0]
    store.update_row(
        first.id, RowUpdate(status=Status.FAILED, error_message="missing template variable: x")
    )
    store.close()
    status = cli(tmp_path, "status").stdout
    assert "Failed rows (1)" in status and "missing template variable: x" in status
    assert "Requeued 1 failed row(s)" in cli(tmp_path, "retry-failed").stdout

    cancelled = cli(tmp_path, "cancel", "sarah@example.com", "--sequence", "lead_nurture")
    assert "Cancelled 5 row(s)" in cancelled.stdout
    assert "5 rows: 5 cancelled" in cli(tmp_path, "status").stdout


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    unknown = cli(tmp_path, "enqueue", "no_such_sequence", "--email", "a@example.com")
    bad_email = cli(tmp_path, "pause", "not-an-address")
    assert (
        unknown.returncode == 2
        and "sequence 'no_such_sequence' is not in the catalog" in unknown.stderr
    )
    assert (
        bad_email.returncode == 1
        and "'not-an-address' is not a valid email address" in bad_email.stderr
    )


def test_cli_preview_renders_a_template(tmp_path: Path) -> None:
    result = cli(
        tmp_path,
        "preview",
        "christmas_email_1",
        "--email",
        "sarah@example.com",
        "--var",
        "first_name=Sarah",
        "--html",
        str(tmp_path / "p.html"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Store: SQLite queue ")
    assert result.stdout.splitlines()[1] == "Subject: Your results are in, Sarah"
    # The packaged templates are documents: the page body's layout, inline styles.
    assert '<p style="margin:0 0 16px">Hi Sarah,</p>' in (tmp_path / "p.html").read_text()


def test_setup_script_needs_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NOTION_TOKEN"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "setup_notion.py"), "--parent-page", "abc"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "NOTION_TOKEN is not set" in result.stderr


def test_setup_script_reads_the_catalog_of_sequences_file(tmp_path: Path) -> None:
    env = dict(os.environ, NOTION_TOKEN=NOTION_TOKEN, SEQUENCES_FILE=str(tmp_path / "none.toml"))
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "setup_notion.py"),
            "--parent-page",
            "0" * 32,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert f"SEQUENCES_FILE {tmp_path / 'none.toml'}" in result.stderr


def test_setup_script_against_the_fake_served_on_loopback(tmp_path: Path) -> None:
    fake = FakeNotion(token=NOTION_TOKEN)
    parent = fake.create_parent_page()
    env = dict(os.environ, NOTION_TOKEN=NOTION_TOKEN)
    with fake.serve() as url:
        env["NOTION_API_BASE_URL"] = url
        runs = [
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "scripts" / "setup_notion.py"),
                    "--parent-page",
                    f"https://www.notion.so/Funnel-{parent.replace('-', '')}",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            for _ in range(2)
        ]
    assert runs[0].returncode == 0, runs[0].stderr
    assert "created Email Queue" in runs[0].stdout
    assert (
        "NOTION_EMAIL_QUEUE_DB_ID=" in runs[0].stdout and "QUEUE_BACKEND=notion" in runs[0].stdout
    )
    assert "created Workers" in runs[0].stdout and "NOTION_WORKERS_DB_ID=" in runs[0].stdout
    assert "Everything was already in place." in runs[1].stdout
    assert NOTION_TOKEN not in runs[0].stdout + runs[0].stderr

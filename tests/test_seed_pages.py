"""seed_templates writes the packaged templates as page content: a document in Notion, the same
document on the embedded default; re-running changes nothing; a marketer's edit is kept."""

from __future__ import annotations

import json
from dataclasses import replace
from email import message_from_bytes
from pathlib import Path

from notion_queue.clock import FakeClock
from notion_queue.html_blocks import html_to_blocks
from notion_queue.mail.outbox import OutboxMailer, sent_messages
from notion_queue.models import Template
from notion_queue.seeding import seed_templates
from notion_queue.store import notion_schema as s
from notion_queue.store.sqlite import SqliteStore
from notion_queue.templates import load_packaged_templates, packaged_documents
from tests.conftest import WorkerFactory, make_notion_world, new_row

TOTAL = len(load_packaged_templates())


def test_seeded_templates_are_documents_with_an_empty_html_body(clock: FakeClock) -> None:
    world = make_notion_world(clock)

    seed_templates(world.store)

    pages = world.fake.pages(world.data_source_ids["Templates"])
    assert len(pages) == TOTAL
    page = next(
        p for p in pages if s.read_text(p["properties"]["Template ID"]) == "lead_nurture_email_1"
    )
    assert s.read_text(page["properties"]["HTML Body"]) == ""
    assert s.read_text(page["properties"]["Seeded Hash"])
    body = world.fake.blocks(page["id"])
    assert body[0]["paragraph"]["rich_text"][0]["plain_text"] == "Hi {{ first_name }},"
    button = next(
        b
        for b in body
        if b["paragraph"]["rich_text"][0]["plain_text"] == "Take the free assessment"
    )
    assert button["paragraph"]["rich_text"][0]["href"] == "https://variable.invalid/assessment_link"


def test_reseeding_changes_nothing_and_reads_no_page_body(clock: FakeClock) -> None:
    world = make_notion_world(clock)
    seed_templates(world.store)
    world.fake.requests.clear()

    again = seed_templates(world.store)

    assert again == {"created": 0, "updated": 0, "unchanged": TOTAL, "kept": 0}
    assert {r.kind for r in world.fake.requests} == {"query"}


def _newer(template_id: str) -> dict[str, Template]:
    """The packaged templates with one of them changed since it was seeded."""
    templates = packaged_documents()
    blocks = json.loads(templates[template_id].blocks)
    blocks[0]["paragraph"]["rich_text"][0]["text"]["content"] = "Hello {{ first_name }},"
    templates[template_id] = replace(templates[template_id], blocks=json.dumps(blocks))
    return templates


def test_a_page_nobody_edited_gets_the_new_packaged_content(clock: FakeClock) -> None:
    world = make_notion_world(clock)
    seed_templates(world.store)

    counts = seed_templates(world.store, templates=_newer("christmas_email_3"))

    assert counts["updated"] == 1 and counts["unchanged"] == TOTAL - 1
    page = next(
        p
        for p in world.fake.pages(world.data_source_ids["Templates"])
        if s.read_text(p["properties"]["Template ID"]) == "christmas_email_3"
    )
    assert world.fake.blocks(page["id"])[0]["paragraph"]["rich_text"][0]["plain_text"] == (
        "Hello {{ first_name }},"
    )
    assert seed_templates(world.store, templates=_newer("christmas_email_3"))["unchanged"] == TOTAL


def test_a_page_a_marketer_edited_is_kept_unless_forced(clock: FakeClock) -> None:
    world = make_notion_world(clock)
    seed_templates(world.store)
    page = next(
        p
        for p in world.fake.pages(world.data_source_ids["Templates"])
        if s.read_text(p["properties"]["Template ID"]) == "christmas_email_3"
    )
    first = world.fake.blocks(page["id"])[0]
    world.fake.edit_block(
        first["id"], {"rich_text": [{"text": {"content": "Dear {{ first_name }},"}}]}
    )

    kept = seed_templates(world.store, templates=_newer("christmas_email_3"))
    text_after_kept = world.fake.blocks(page["id"])[0]["paragraph"]["rich_text"][0]["plain_text"]
    forced = seed_templates(world.store, force=True, templates=_newer("christmas_email_3"))

    assert kept["kept"] == 1 and text_after_kept == "Dear {{ first_name }},"
    assert forced["updated"] == 1
    assert world.fake.blocks(page["id"])[0]["paragraph"]["rich_text"][0]["plain_text"] == (
        "Hello {{ first_name }},"
    )


def test_the_embedded_default_sends_the_same_document_notion_would(
    clock: FakeClock, tmp_path: Path, make_worker: WorkerFactory
) -> None:
    bodies = []
    for name in ("sqlite", "notion"):
        store = (
            SqliteStore(tmp_path / "q.sqlite3")
            if name == "sqlite"
            else make_notion_world(clock).store
        )
        seed_templates(store)
        store.add_row(new_row())
        outbox = OutboxMailer(tmp_path / f"outbox-{name}", clock)
        make_worker(store, outbox).run_once()
        [path] = sent_messages(outbox.folder)
        message = message_from_bytes(path.read_bytes())
        bodies.append([p.get_payload(decode=True) for p in message.walk() if not p.is_multipart()])

    sqlite_parts, notion_parts = bodies
    assert sqlite_parts == notion_parts
    assert b"Take the free assessment" in sqlite_parts[1] and b'width="600"' in sqlite_parts[1]


def test_every_packaged_template_converts_to_supported_blocks() -> None:
    for template_id, template in load_packaged_templates().items():
        blocks = html_to_blocks(template.html)
        assert blocks, template_id
        assert {b["type"] for b in blocks} <= {"paragraph", "bulleted_list_item"}, template_id


def test_the_seed_script_on_the_embedded_default_says_what_it_did(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTION_", "RESEND_"))}
    env.update(SQLITE_PATH=str(tmp_path / "q.sqlite3"), STATE_DIR=str(tmp_path / "state"))
    seed = Path(__file__).resolve().parent.parent / "scripts" / "seed_templates.py"
    script = [sys.executable, str(seed), "--quiet"]

    first = subprocess.run(script, env=env, capture_output=True, text=True, check=False)
    again = subprocess.run(
        [*script, "--force"], env=env, capture_output=True, text=True, check=False
    )

    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith(
        f"{TOTAL} created, 0 updated, 0 unchanged, 0 kept (edited in Notion; --force overwrites them)"
    )
    assert f"0 created, 0 updated, {TOTAL} unchanged" in again.stdout
    store = SqliteStore(tmp_path / "q.sqlite3")
    blocks = store.page_body("lead_nurture_email_1")
    store.close()
    assert (
        json.loads(blocks)[0]["paragraph"]["rich_text"][0]["text"]["content"]
        == "Hi {{ first_name }},"
    )

"""Pages a person opens, in a real browser (Debian's Chromium driven by Playwright): the outbox
viewer, and an email's unsubscribe link, confirm button included."""

from __future__ import annotations

import shutil
import sqlite3
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest

from scripts.harness.processes import free_port, wait_until
from tests.test_end_to_end import _run_server, base_env, run_worker_once

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs Debian's chromium (.ci/run installs it: apt-get install chromium)",
)
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_outbox_viewer_and_unsubscribe_in_a_browser(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = base_env(
        tmp_path,
        PORT=str(port),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        UNSUBSCRIBE_SECRET="browser-test-unsubscribe-secret",
    )
    for url, _ in _run_server(env, port, tmp_path):
        signup = {"email": "sarah@example.com", "first_name": "Sarah"}
        assert httpx.post(f"{url}/webhook/christmas-signup", json=signup).status_code == 202
        wait_until(lambda url=url: httpx.get(f"{url}/readyz").json()["journal_backlog"] == 0)
        assert run_worker_once(env, tmp_path).returncode == 0
        [eml] = (tmp_path / "outbox").glob("*.eml")
        message = message_from_bytes(eml.read_bytes())
        unsubscribe_link = str(message["List-Unsubscribe"]).strip("<>")

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            page = browser.new_page()

            page.goto(f"{url}/outbox")
            assert "1 message(s)" in page.inner_text("body")
            page.click(f"text={message['Subject']}")
            assert page.inner_text("h2 >> nth=0") == "HTML"
            frame = page.frame_locator("iframe")
            assert "Hi Sarah," in frame.locator("body").inner_text()
            assert "Unsubscribe" in page.inner_text("pre")

            page.goto(unsubscribe_link)
            assert "Stop all emails to sarah@example.com?" in page.inner_text("body")
            page.click("#confirm")
            page.wait_for_selector("text=You are unsubscribed")
            assert page.url.startswith(f"{url}/unsubscribe")  # answered in place, no redirect

            page.goto(unsubscribe_link.replace("token=", "token=x"))
            assert "This link is not valid" in page.inner_text("h1")
            browser.close()

        wait_until(lambda url=url: httpx.get(f"{url}/readyz").json()["journal_backlog"] == 0)

    with sqlite3.connect(tmp_path / "queue.sqlite3") as db:
        statuses = {s for (s,) in db.execute("SELECT status FROM email_queue")}
        unsubscribed = db.execute("SELECT unsubscribed FROM contacts").fetchone()
    assert statuses == {"sent", "cancelled"}
    assert unsubscribed == (1,)

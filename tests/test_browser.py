"""Pages a person opens, in a real browser (Debian's Chromium driven by Playwright): the outbox
viewer, an email's unsubscribe link, confirm button included, and the queue page."""

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


def test_queue_page_in_a_browser(tmp_path: Path) -> None:
    """Sign in, filter, open a row and see its email, pause and resume it: on the SQLite default."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    admin_token = "browser-test-admin-token-0123456789"
    env = base_env(tmp_path, PORT=str(port), ADMIN_TOKEN=admin_token)
    for url, _ in _run_server(env, port, tmp_path):
        for email in ("sarah@example.com", "tom@example.com"):
            signup = {"email": email, "first_name": email.split("@")[0].title()}
            assert httpx.post(f"{url}/webhook/christmas-signup", json=signup).status_code == 202
        wait_until(lambda url=url: httpx.get(f"{url}/readyz").json()["journal_backlog"] == 0)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            page = browser.new_page()

            page.goto(f"{url}/queue")
            assert page.inner_text("h1") == "Sign in"
            page.fill("input[name=token]", "wrong")
            page.click("button:has-text('Sign in')")
            assert "not the admin token" in page.inner_text("body")
            page.fill("input[name=token]", admin_token)
            page.click("button:has-text('Sign in')")
            page.wait_for_selector("text=Email Queue")
            assert page.url == f"{url}/queue"  # the token is in no URL
            assert page.locator("tr:has-text('@example.com')").count() == 10

            page.fill("input[name=email]", "sarah@example.com")
            page.click("button:has-text('Filter')")
            rows = page.locator("tr:has-text('sarah@example.com')")
            assert rows.count() == 5
            assert page.locator("tr:has-text('tom@example.com')").count() == 0

            rows.first.locator("button:has-text('Pause')").click()
            page.wait_for_selector("td.status:has-text('paused')")
            assert "email=sarah%40example.com" in page.url  # back to the same filtered list
            assert page.locator("td.status:has-text('queued')").count() == 4  # filter kept

            page.select_option("select[name=status]", "paused")
            page.click("button:has-text('Filter')")
            page.click("a:has-text('lead_nurture_email_1')")
            frame = page.frame_locator("iframe")
            assert "Hi Sarah," in frame.locator("body").inner_text()
            assert "Unsubscribe" in page.inner_text("pre")
            page.click("button:has-text('Resume')")
            page.wait_for_selector("td:has-text('queued')")

            page.goto(f"{url}/queue")
            page.click("button:has-text('Sign out')")
            assert page.inner_text("h1") == "Sign in"
            browser.close()

    with sqlite3.connect(tmp_path / "queue.sqlite3") as db:
        statuses = {s for (s,) in db.execute("SELECT status FROM email_queue")}
    assert statuses == {"queued"}

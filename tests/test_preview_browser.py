"""A template's Preview link in a real browser (Debian's Chromium driven by Playwright), on the
server as it runs: what a marketer sees when they click Preview on a Templates row."""

from __future__ import annotations

from pathlib import Path

from notion_queue.unsubscribe import UnsubscribeTokens
from notion_queue.web.preview_page import PreviewTokens
from scripts.harness.processes import free_port
from tests.test_browser import CHROMIUM, LAUNCH_ARGS, pytestmark  # noqa: F401  (needs chromium)
from tests.test_end_to_end import _run_server, base_env

SECRET = "browser-test-unsubscribe-secret"


def test_a_preview_link_shows_the_email_as_a_recipient_sees_it(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = base_env(
        tmp_path,
        PORT=str(port),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        UNSUBSCRIBE_SECRET=SECRET,
    )
    previews = PreviewTokens(UnsubscribeTokens(SECRET.encode()))
    for url, _ in _run_server(env, port, tmp_path):
        link = previews.url(url, "lead_nurture_email_1")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            page = browser.new_page()

            answer = page.goto(f"{link}&first_name=Nadia")
            assert answer is not None and answer.status == 200
            assert page.inner_text("#subject") == ("Nadia, your free BusinessX assessment is ready")
            frame = page.frame_locator("iframe#html")
            assert "Hi Nadia," in frame.locator("body").inner_text()
            assert page.get_attribute("iframe#html", "sandbox") == ""
            assert "Hi Nadia," in page.inner_text("#text")

            forged = page.goto(link.replace("token=", "token=x"))
            assert forged is not None and forged.status == 403
            assert "not valid" in page.inner_text("h1")
            browser.close()

"""Test sends and Preview links, from the Templates database.

A marketer types an address into a template's `Send Test To`; at its next poll the worker sends
that template, rendered with the seeds' sample values exactly as a lead would get it
(`template_samples`: the same TemplateSource and Composer), to that address with the subject
prefixed "[TEST] ", then clears the property and writes `Last Test` and `Test Result`. The
same poll fills a missing or outdated `Preview` link.

A test send goes through the worker's mailer (so its pacing), and nothing else: no Email Queue
row, no contact, no analytics row, no metrics; Resend's later events for it match no row and
change nothing. An address that is unsubscribed or suppressed is refused, as for any email.

Cost: one filtered Templates query a poll, at most one each 30 s (`Send Test To` set, or
`Preview` missing or outdated);
each answer is one page update; a test send re-reads the templates (one query per 100) so it
sends what the marketer just wrote, not the worker's cached copy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from notion_queue.addresses import address_problem
from notion_queue.clock import Clock
from notion_queue.compose import Composer, tag
from notion_queue.errors import AccountError, NotionQueueError, PermanentError, RateLimited
from notion_queue.logs import get_logger
from notion_queue.mail.base import Mailer
from notion_queue.sequences import Catalog
from notion_queue.store.base import TemplateStore
from notion_queue.suppression import SuppressionList
from notion_queue.template_counts import TemplateCounts
from notion_queue.template_requests import TemplateDesk, TemplateJob, TemplateRequest
from notion_queue.template_samples import compose_sample, sample_row
from notion_queue.templates import TemplateSource
from notion_queue.web.preview_page import PreviewTokens

log = get_logger(__name__)
SUBJECT_PREFIX = "[TEST] "
RATE_LIMIT_WAITS = 5
# At most one Templates query this often: at the default 60 s poll that is every poll, and a
# worker polling faster (or waking for a row about to fall due) does not multiply the cost.
CHECK_EVERY_SECONDS = 30.0


@dataclass
class TestSends:
    __test__ = False  # not a pytest class

    desk: TemplateDesk
    mailer: Mailer
    composer: Composer
    templates: TemplateSource  # its own, uncached: a test sends what was just written
    suppressed: SuppressionList
    catalog: Catalog
    clock: Clock
    previews: PreviewTokens
    every: float = CHECK_EVERY_SECONDS
    _checked: float | None = None

    def run_once(self) -> int:
        """Answer every request found in one query; the number of test emails sent. Never
        raises: a store or mailer that fails now leaves the request for the next poll."""
        now = self.clock.monotonic()
        if self._checked is not None and now - self._checked < self.every:
            return 0
        self._checked = now
        base = self.composer.public_base_url.rstrip("/")
        sent = 0
        try:
            for request in self.desk.template_requests(f"{base}/preview/"):
                preview = self.previews.url(base, request.template_id)
                new_preview = preview if request.preview_url != preview else None
                if not request.send_test_to:
                    self.desk.answer(request.page_id, preview_url=new_preview)
                    continue
                result = self._send(request)
                if result is None:
                    continue  # transient: the same request (same key) is tried next poll
                self.desk.answer(
                    request.page_id,
                    preview_url=new_preview,
                    tested_at=self.clock.now(),
                    result=result,
                )
                sent += result.startswith("sent to ")
        except PermanentError as exc:  # the Templates database lacks the properties
            self.every = float("inf")
            log.error(
                "test_sends_off",
                reason=str(exc),
                action="re-run scripts/setup_notion.py to add Preview and Send Test To",
            )
        except (NotionQueueError, OSError) as exc:
            log.warning("test_sends_deferred", reason=str(exc))
        return sent

    def _send(self, request: TemplateRequest) -> str | None:
        """What Test Result says, or None to try again at the next poll."""
        address = request.send_test_to.strip().lower()
        problem = address_problem(address)
        if problem is not None:
            return f"not sent: {problem}"
        if address in self.suppressed:
            return f"not sent: {address} is unsubscribed or suppressed"
        try:
            sample = sample_row(
                request.template_id,
                self.catalog,
                self.clock.now(),
                to=address,
                row_id=f"test-send/{request.page_id}/{request.edited}",
            )
            email = compose_sample(self.composer, self.templates, sample)
        except PermanentError as exc:
            return f"not sent: {exc}"
        email = dataclasses.replace(
            email,
            subject=SUBJECT_PREFIX + email.subject,
            tags={"template": tag(request.template_id), "test_send": "true"},
        )
        for _ in range(RATE_LIMIT_WAITS):
            try:
                result = self.mailer.send(email)
                break
            except RateLimited as exc:
                self.clock.sleep(exc.retry_after or 1.0)
            except PermanentError as exc:
                return f"not sent: {exc}"
            except (AccountError, NotionQueueError) as exc:
                log.warning("test_send_deferred", template_id=request.template_id, reason=str(exc))
                return None
        else:
            return None
        log.info("test_sent", template_id=request.template_id, message_id=result.message_id)
        return f"sent to {address} (id {result.message_id})"


def template_jobs(worker: Any, store: TemplateStore, catalog: Catalog) -> tuple[TemplateJob, ...]:
    """The worker's jobs on the Templates database a marketer edits (Notion): test sends and
    Preview links, and the per-template counts. None on the embedded default, which has no such
    database (`notion-queue preview` and `notion-queue report` serve it)."""
    desk = getattr(store, "template_desk", None)
    if desk is None or worker.composer.unsubscribe is None:
        return ()
    test_sends = TestSends(
        desk=desk,
        mailer=worker.mailer,
        composer=worker.composer,
        templates=TemplateSource(store, worker.clock, cache_seconds=0),
        suppressed=worker.suppressed,
        catalog=catalog,
        clock=worker.clock,
        previews=PreviewTokens(worker.composer.unsubscribe),
    )
    return (test_sends, TemplateCounts(rows=store, desk=desk, clock=worker.clock))  # type: ignore[arg-type]

"""The short fault-injection run (the long one is `make soak`, scripts/soak.py): the real
server.py and worker.py against the fake Notion and Resend, with 429/500/503/timeouts at random
(some after the write was committed), a Notion outage during intake, and the worker SIGKILLed at
random moments. See scripts/harness/soak.py for the scenario."""

from __future__ import annotations

from pathlib import Path

from scripts.harness.soak import ROWS_PER_EVENT, run_soak

# 40 signups x 5 emails = 200 emails (the fakes are served without rate limits, and the scenario
# lets the worker pace Resend at 20/s). The long run is `make soak` (scripts/soak.py: 200
# signups, 1000 emails, by default).
EVENTS = 40
KILLS = 3


def test_faults_and_kills_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    report = run_soak(
        EVENTS, KILLS, seed=20251201, workdir=tmp_path, fault_probability=0.1, timeout=300
    )
    print(report.to_json())  # the figures, shown with -s or on failure

    assert report.problems == [], report.to_json()
    assert report.accepted == EVENTS and report.accepted_during_outage > 0
    assert report.rows == EVENTS * ROWS_PER_EVENT and report.duplicate_rows == 0
    assert report.deliveries == EVENTS * ROWS_PER_EVENT and report.duplicate_deliveries == 0
    assert report.queued_left == 0 and report.not_sent == 0
    assert report.kills == KILLS
    # The faults really happened, including the ones the product must see through.
    assert report.notion_faults > 0 and report.notion_committed_faults > 0
    assert report.notion_timeouts > 0 and report.resend_faults > 0

"""The short PostgreSQL soak (the long one is `make soak ARGS='--postgres ...'`): the real
server.py and three worker.py processes on a throw-away PostgreSQL, Resend failing at random,
workers SIGKILLed at random moments. See scripts/harness/soak_postgres.py."""

from __future__ import annotations

from pathlib import Path

from scripts.harness.soak import ROWS_PER_EVENT
from scripts.harness.soak_postgres import run_postgres_soak

EVENTS = 40  # x 5 emails = 200 rows
KILLS = 4


def test_three_workers_killed_at_random_deliver_every_row_exactly_once(tmp_path: Path) -> None:
    report = run_postgres_soak(EVENTS, KILLS, seed=20251201, workdir=tmp_path, timeout=300)
    print(report.to_json())  # the figures, shown with -s or on failure

    assert report.problems == [], report.to_json()
    assert report.rows == EVENTS * ROWS_PER_EVENT and report.duplicate_rows == 0
    assert report.duplicate_deliveries == 0 and report.undelivered_rows == 0
    assert report.queued_left == 0 and report.not_sent == 0
    assert report.kills == KILLS and report.resend_faults > 0

"""The short embedded-default soak (the long one is `make soak ARGS='--embedded ...'`): the real
server.py and worker.py on the SQLite queue and the outbox mailer, the worker SIGKILLed at random
moments while it sends with SEND_CONCURRENCY=8. See scripts/harness/soak_embedded.py."""

from __future__ import annotations

from pathlib import Path

from scripts.harness.soak import ROWS_PER_EVENT
from scripts.harness.soak_embedded import run_embedded_soak

# 60 signups x 5 emails = 300 emails; on the mailer that wrote the .eml and then its key file,
# 5 kills left about 4 duplicate messages.
EVENTS = 60
KILLS = 5


def test_worker_kills_on_the_embedded_default_send_every_row_exactly_once(
    tmp_path: Path,
) -> None:
    report = run_embedded_soak(EVENTS, KILLS, seed=20251201, workdir=tmp_path, timeout=300)
    print(report.to_json())  # the figures, shown with -s or on failure

    assert report.problems == [], report.to_json()
    assert report.rows == EVENTS * ROWS_PER_EVENT and report.duplicate_rows == 0
    assert report.messages == report.rows and report.duplicate_messages == 0
    assert report.rows_without_message == 0
    assert report.queued_left == 0 and report.not_sent == 0
    assert report.kills == KILLS

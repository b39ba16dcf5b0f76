"""The status table: the transitions the product makes are the ones it allows."""

from __future__ import annotations

from notion_queue.models import TRANSITIONS, Status, can_transition, parse_status


def test_only_queued_rows_move_to_sent() -> None:
    assert [s for s in Status if can_transition(s, Status.SENT) and s is not Status.SENT] == [
        Status.QUEUED
    ]


def test_a_sent_email_is_final() -> None:
    assert TRANSITIONS[Status.SENT] == frozenset()


def test_marketers_can_pause_resume_and_requeue_failed_rows() -> None:
    assert can_transition(Status.QUEUED, Status.PAUSED)
    assert can_transition(Status.PAUSED, Status.QUEUED)
    assert can_transition(Status.FAILED, Status.QUEUED)


def test_status_typed_by_hand_is_read_leniently_or_not_at_all() -> None:
    assert parse_status(" Queued ") is Status.QUEUED
    assert parse_status("qeued") is None
    assert parse_status(None) is None


def test_secrets_are_redacted_from_every_log_field() -> None:
    from notion_queue.logs import REDACTED, SecretRedactor

    redact = SecretRedactor(["ntn_supersecret", "re_key_123"])
    event = redact(
        None,
        "info",
        {
            "event": "x",
            "reason": "Notion refused ntn_supersecret",
            "nested": {"k": ["re_key_123"]},
            "error": ValueError("token re_key_123 bad"),
        },
    )
    assert event["reason"] == f"Notion refused {REDACTED}"
    assert event["nested"] == {"k": [REDACTED]}
    assert event["error"] == f"ValueError: token {REDACTED} bad"

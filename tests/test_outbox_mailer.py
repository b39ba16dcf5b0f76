"""The embedded default mailer keeps Resend's promise: one message per idempotency key, even when
the worker is killed in the middle of a send or two threads send the same key at once."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from notion_queue.clock import FakeClock
from notion_queue.mail.base import OutgoingEmail
from notion_queue.mail.outbox import OutboxMailer
from notion_queue.web.outbox_viewer import outbox_routes


class Killed(BaseException):
    """The worker process dying (SIGKILL): nothing after this point runs."""


def email(key: str = "notion-queue/row-1/abc", to: str = "sarah@example.com") -> OutgoingEmail:
    return OutgoingEmail(
        sender="Team <team@example.com>",
        to=to,
        subject="Welcome",
        html="<p>Hello</p>",
        text="Hello",
        idempotency_key=key,
    )


def messages(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.eml"))


def message_id(path: Path) -> str:
    return str(message_from_bytes(path.read_bytes())["Message-ID"]).strip("<>")


def kill_after_a_message_appears(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever call makes an .eml visible under its final name (a rename or a link), the
    process dies right after it, before any other write."""

    def dying(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
            result = real(src, dst, *args, **kwargs)
            if str(dst).endswith(".eml"):
                raise Killed
            return result

        return call

    for name in ("replace", "rename", "link"):
        monkeypatch.setattr(os, name, dying(getattr(os, name)))


def test_a_send_killed_right_after_the_message_is_written_is_not_sent_again(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "outbox"
    with monkeypatch.context() as patch:
        kill_after_a_message_appears(patch)
        with pytest.raises(Killed):
            OutboxMailer(folder, clock).send(email())
    [written] = messages(folder)

    clock.advance(minutes=1)  # the restarted worker re-sends the row with the same key
    result = OutboxMailer(folder, clock).send(email())

    assert messages(folder) == [written]
    assert result.replayed and result.message_id == message_id(written)


def test_a_send_killed_before_the_message_is_written_sends_it_once_later(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "outbox"
    real_fsync = os.fsync

    def die_after_first_fsync(fd: int) -> None:
        real_fsync(fd)
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", die_after_first_fsync)
        with pytest.raises(Killed):
            OutboxMailer(folder, clock).send(email())
    assert messages(folder) == []

    result = OutboxMailer(folder, clock).send(email())

    [written] = messages(folder)
    assert not result.replayed and result.message_id == message_id(written)


def test_the_same_key_twice_writes_one_message_and_answers_its_id(
    tmp_path: Path, clock: FakeClock
) -> None:
    mailer = OutboxMailer(tmp_path / "outbox", clock)

    first = mailer.send(email())
    clock.advance(minutes=5)
    second = mailer.send(email())
    other = mailer.send(email(key="notion-queue/row-2/def", to="tom@example.com"))

    assert len(messages(mailer.folder)) == 2
    assert second.replayed and second.message_id == first.message_id
    assert not other.replayed and other.message_id != first.message_id


def test_two_threads_sending_one_key_at_once_make_one_message_with_one_id(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailer = OutboxMailer(tmp_path / "outbox", clock)
    # Both threads get past "is it there yet?" before either writes anything.
    both_checked = threading.Barrier(2, timeout=5)
    real_mkstemp = tempfile.mkstemp

    def mkstemp_together(*args: Any, **kwargs: Any) -> Any:
        both_checked.wait()
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_together)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: mailer.send(email()), range(2)))

    [written] = messages(mailer.folder)
    assert {r.message_id for r in results} == {message_id(written)}
    assert sorted(r.replayed for r in results) == [False, True]


def test_a_key_sent_before_the_upgrade_is_still_answered_as_sent(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Outboxes written by earlier versions kept the key in `.idempotency/<sha256 of key>`."""
    folder = tmp_path / "outbox"
    legacy = folder / ".idempotency"
    legacy.mkdir(parents=True)
    (folder / "20251130T090000-0123456789.eml").write_bytes(b"Message-ID: <old@example.com>\n")
    key = email().idempotency_key
    (legacy / hashlib.sha256(key.encode()).hexdigest()).write_text(
        json.dumps({"id": "old@example.com", "file": "20251130T090000-0123456789.eml"})
    )

    result = OutboxMailer(folder, clock).send(email())

    assert result.replayed and result.message_id == "old@example.com"
    assert [p.name for p in messages(folder)] == ["20251130T090000-0123456789.eml"]


def test_the_outbox_page_lists_the_newest_message_first(tmp_path: Path, clock: FakeClock) -> None:
    mailer = OutboxMailer(tmp_path / "outbox", clock)
    recipients = [f"lead{n}@example.com" for n in range(6)]
    for n, to in enumerate(recipients):
        mailer.send(email(key=f"notion-queue/row-{n}/x", to=to))
        clock.advance(minutes=1)

    page = TestClient(Starlette(routes=outbox_routes(mailer.folder))).get("/outbox").text

    shown = sorted(recipients, key=page.index)
    assert shown == recipients[::-1] and "6 message(s)" in page


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"reply_to": "Reply Desk <reply@businessx.com>", "text": "Line 1\n\nLine 3\r\nend"},
        {"subject": "Hello? Yes: 100% & more (really) =?not encoded"},
        {"subject": "Grüße, Sarah ✨", "text": "Grüße"},
        {"to": '"Sarah, J." <sarah@example.com>'},
        {"to": "Sarah J. Smith <sarah@example.com>"},
        {"html": "<p>" + "x" * 1200 + "</p>"},
        {"text": ""},
        {"headers": {"List-Unsubscribe": "<https://x.example/u?token=" + "a" * 300 + ">"}},
    ],
)
def test_the_fast_message_writer_gives_the_email_packages_bytes(changes: dict[str, Any]) -> None:
    import dataclasses
    import re

    from notion_queue.mail.outbox import build_message, message_bytes

    mail = dataclasses.replace(email(), **changes)
    date = "Mon, 01 Dec 2025 10:00:00 +0000"
    fast = message_bytes(mail, message_id="<id@businessx.com>", date=date)
    slow = bytes(build_message(mail, message_id="<id@businessx.com>", date=date))

    def same_boundary(data: bytes) -> bytes:
        return re.sub(rb"={15}\d+==", b"BOUNDARY", data)

    assert same_boundary(fast) == same_boundary(slow)

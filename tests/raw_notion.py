"""The official notion-client talking straight to a FakeNotion (no retries), for the tests that
check the fake answers as Notion does."""

from __future__ import annotations

import httpx
from notion_client import Client

from notion_queue.testing.fake_notion import FakeNotion


def raw_client(fake: FakeNotion) -> Client:
    return Client(
        auth=fake.token,
        base_url="https://api.notion.com",
        client=httpx.Client(transport=fake.transport()),
        retry=False,
    )

"""The fake Notion's block children (page bodies) answer as Notion's do, through notion-client:
children given at page create, list with pagination and nesting, append, delete."""

from __future__ import annotations

from typing import Any

import pytest
from notion_client import Client
from notion_client.errors import APIResponseError

from notion_queue.clock import FakeClock
from notion_queue.testing.fake_notion import FakeNotion
from tests.raw_notion import raw_client

TOKEN = "secret_fake_blocks"


@pytest.fixture
def fake(clock: FakeClock) -> FakeNotion:
    return FakeNotion(clock, token=TOKEN)


@pytest.fixture
def client(fake: FakeNotion) -> Client:
    return raw_client(fake)


@pytest.fixture
def ds(fake: FakeNotion) -> str:
    return fake.create_database(fake.create_parent_page(), "Templates", {"Name": {"title": {}}})[1]


def paragraph(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "paragraph", "paragraph": {"rich_text": [{"text": {"content": text}}], **extra}}


def new_page(client: Client, ds: str, children: list[dict[str, Any]]) -> dict[str, Any]:
    page: dict[str, Any] = client.pages.create(
        parent={"data_source_id": ds},
        properties={"Name": {"title": [{"text": {"content": "welcome"}}]}},
        children=children,
    )
    return page


def listed(client: Client, block_id: str, **params: Any) -> dict[str, Any]:
    answer: dict[str, Any] = client.blocks.children.list(block_id=block_id, **params)
    return answer


def test_children_given_at_page_create_are_listed_in_notions_shape(client: Client, ds: str) -> None:
    page = new_page(client, ds, [paragraph("Hi {{ first_name }}"), {"divider": {}}])

    answer = listed(client, page["id"])

    assert answer["object"] == "list" and answer["type"] == "block" and answer["block"] == {}
    assert answer["has_more"] is False and answer["next_cursor"] is None
    first, second = answer["results"]
    assert first["object"] == "block" and first["type"] == "paragraph"
    assert first["parent"] == {"type": "page_id", "page_id": page["id"]}
    assert first["has_children"] is False and first["in_trash"] is False
    assert first["created_time"].endswith(":00.000Z")
    assert first["paragraph"] == {
        "rich_text": [
            {
                "type": "text",
                "text": {"content": "Hi {{ first_name }}", "link": None},
                "annotations": {
                    "bold": False,
                    "italic": False,
                    "strikethrough": False,
                    "underline": False,
                    "code": False,
                    "color": "default",
                },
                "plain_text": "Hi {{ first_name }}",
                "href": None,
            }
        ],
        "color": "default",
    }
    assert second["type"] == "divider" and second["divider"] == {}


def test_block_children_page_through_with_cursors(client: Client, ds: str) -> None:
    page = new_page(client, ds, [paragraph(f"line {n}") for n in range(5)])

    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"page_size": 2}
        if cursor:
            params["start_cursor"] = cursor
        answer = listed(client, page["id"], **params)
        seen += [b["paragraph"]["rich_text"][0]["plain_text"] for b in answer["results"]]
        cursor = answer["next_cursor"]
        if not answer["has_more"]:
            break

    assert seen == [f"line {n}" for n in range(5)]


def test_nested_children_are_fetched_per_block(client: Client, ds: str) -> None:
    item = {
        "type": "bulleted_list_item",
        "bulleted_list_item": {
            "rich_text": [{"text": {"content": "outer"}}],
            "children": [{"bulleted_list_item": {"rich_text": [{"text": {"content": "inner"}}]}}],
        },
    }
    page = new_page(client, ds, [item])

    [outer] = listed(client, page["id"])["results"]
    [inner] = listed(client, outer["id"])["results"]

    assert outer["has_children"] is True and "children" not in outer["bulleted_list_item"]
    assert inner["parent"] == {"type": "block_id", "block_id": outer["id"]}
    assert inner["bulleted_list_item"]["rich_text"][0]["plain_text"] == "inner"


def test_append_adds_at_the_end_answers_the_new_blocks_and_moves_last_edited_time(
    client: Client, ds: str, fake: FakeNotion, clock: FakeClock
) -> None:
    page = new_page(client, ds, [paragraph("first")])
    clock.advance(minutes=5)

    answer: dict[str, Any] = client.blocks.children.append(
        block_id=page["id"], children=[paragraph("second"), paragraph("third")]
    )

    assert answer["object"] == "list" and answer["type"] == "block"
    assert [b["paragraph"]["rich_text"][0]["plain_text"] for b in answer["results"]] == [
        "second",
        "third",
    ]
    texts = [
        b["paragraph"]["rich_text"][0]["plain_text"] for b in listed(client, page["id"])["results"]
    ]
    assert texts == ["first", "second", "third"]
    assert fake.page(page["id"])["last_edited_time"] > page["last_edited_time"]


def test_a_deleted_block_is_in_the_trash_and_no_longer_listed(client: Client, ds: str) -> None:
    page = new_page(client, ds, [paragraph("keep"), paragraph("drop")])
    drop = listed(client, page["id"])["results"][1]

    deleted: dict[str, Any] = client.blocks.delete(block_id=drop["id"])

    assert deleted["object"] == "block" and deleted["in_trash"] is True
    assert deleted["archived"] is True
    remaining = listed(client, page["id"])["results"]
    assert [b["paragraph"]["rich_text"][0]["plain_text"] for b in remaining] == ["keep"]
    with pytest.raises(APIResponseError) as again:
        client.blocks.delete(block_id=drop["id"])
    assert again.value.status == 400 and "archived" in str(again.value)


def test_bad_block_requests_get_notions_errors(client: Client, ds: str) -> None:
    page = new_page(client, ds, [])

    with pytest.raises(APIResponseError) as too_many:
        client.blocks.children.append(
            block_id=page["id"], children=[paragraph(str(n)) for n in range(101)]
        )
    with pytest.raises(APIResponseError) as bad_url:
        client.blocks.children.append(
            block_id=page["id"],
            children=[{"image": {"type": "external", "external": {"url": "not a url"}}}],
        )
    with pytest.raises(APIResponseError) as missing:
        listed(client, "0" * 32)

    assert too_many.value.status == 400 and "should be ≤ `100`" in str(too_many.value)
    assert bad_url.value.status == 400 and "Invalid URL for link." in str(bad_url.value)
    assert missing.value.status == 404 and missing.value.code == "object_not_found"

"""FakeNotion, driven through the real notion-client (retry=False) as the product drives Notion."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from notion_client import AsyncClient, Client
from notion_client.errors import APIResponseError, RequestTimeoutError, UnknownHTTPResponseError
from notion_client.helpers import collect_paginated_api

from notion_queue.clock import FakeClock
from notion_queue.testing.fake_notion import FakeNotion, NotionError

TOKEN = "secret_fake_notion_test"
T0 = datetime(2026, 5, 1, 9, 0, 30, tzinfo=UTC)
LOGGER = logging.getLogger("tests.fake_notion.client")
SCHEMA: dict[str, Any] = {
    "Subject": {"title": {}},
    "To": {"email": {}},
    "Body": {"rich_text": {}},
    "State": {
        "select": {
            "options": [
                {"name": "Queued", "color": "gray"},
                {"name": "Sent", "color": "green"},
                {"name": "Failed", "color": "red"},
            ]
        }
    },
    "Send at": {"date": {}},
    "Attempts": {"number": {"format": "number"}},
    "Approved": {"checkbox": {}},
    "Tags": {"multi_select": {"options": [{"name": "vip", "color": "purple"}]}},
    "Stage": {"status": {}},
    "Link": {"url": {}},
    "Created": {"created_time": {}},
    "Edited": {"last_edited_time": {}},
}
PAGE_FIELDS = [
    "object",
    "id",
    "created_time",
    "last_edited_time",
    "created_by",
    "last_edited_by",
    "cover",
    "icon",
    "parent",
    "in_trash",
    "is_archived",
    "is_locked",
    "properties",
    "url",
    "public_url",
    "archived",
    "request_id",
]


def make_client(transport: httpx.BaseTransport, base_url: str = "https://api.notion.com") -> Client:
    # Never `with Client(...)`: it swaps the injected httpx client for a fresh one.
    return Client(
        auth=TOKEN,
        base_url=base_url,
        client=httpx.Client(transport=transport),
        retry=False,
        logger=LOGGER,
        log_level=logging.CRITICAL,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def fake(clock: FakeClock) -> FakeNotion:
    return FakeNotion(clock, token=TOKEN)


@pytest.fixture
def notion(fake: FakeNotion) -> Iterator[Client]:
    client = make_client(fake.transport())
    yield client
    client.close()


@pytest.fixture
def ids(fake: FakeNotion, notion: Client) -> dict[str, str]:
    parent = fake.create_parent_page("Funnel")
    db = notion.databases.create(
        parent={"type": "page_id", "page_id": parent},
        title=[{"type": "text", "text": {"content": "Email queue"}}],
        is_inline=False,
        initial_data_source={"properties": SCHEMA},
    )
    return {"parent": parent, "db": db["id"], "ds": db["data_sources"][0]["id"]}


def text(value: str) -> list[dict[str, Any]]:
    return [{"text": {"content": value}}]


def row(subject: str, **values: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"Subject": {"title": text(subject)}}
    for name, value in values.items():
        props[name.replace("_", " ")] = value
    return props


def create(notion: Client, ds: str, subject: str, **values: Any) -> dict[str, Any]:
    page: dict[str, Any] = notion.pages.create(
        parent={"type": "data_source_id", "data_source_id": ds}, properties=row(subject, **values)
    )
    return page


def subjects(pages: list[dict[str, Any]]) -> list[str]:
    return [p["properties"]["Subject"]["title"][0]["plain_text"] for p in pages]


def query(notion: Client, ds: str, **kwargs: Any) -> list[str]:
    return subjects(notion.data_sources.query(data_source_id=ds, **kwargs)["results"])


def api_error(call: Any) -> APIResponseError:
    with pytest.raises(APIResponseError) as caught:
        call()
    return caught.value


# -------------------------------------------------------------------- databases and schema


def test_database_and_data_source_are_distinct_objects(
    fake: FakeNotion, notion: Client, ids: dict[str, str]
) -> None:
    db = notion.databases.retrieve(database_id=ids["db"].replace("-", ""))
    assert db["object"] == "database" and "properties" not in db
    assert db["data_sources"] == [{"id": ids["ds"], "name": "Email queue"}]
    assert re.fullmatch(r"2026-05-01T09:00:30\.000\+00:00", db["created_time"])
    assert db["parent"] == {"type": "page_id", "page_id": ids["parent"]} and "request_id" in db

    ds = notion.data_sources.retrieve(data_source_id=ids["ds"])
    assert ds["created_time"] == "2026-05-01T09:00:00.000Z"
    assert ds["parent"] == {"type": "database_id", "database_id": ids["db"]}
    props = ds["properties"]
    assert list(props) == list(SCHEMA)
    assert props["Subject"]["id"] == "title" and props["Subject"]["type"] == "title"
    assert props["State"]["select"]["options"][1]["name"] == "Sent"
    assert props["State"]["select"]["options"][1]["color"] == "green"
    assert {"id", "name", "description", "type", "select"} == set(props["State"])
    assert [o["name"] for o in props["Stage"]["status"]["options"]] == [
        "Not started",
        "In progress",
        "Done",
    ]
    assert fake.data_source(ids["ds"])["properties"] == props

    wrong = api_error(lambda: notion.data_sources.retrieve(data_source_id=ids["db"]))
    assert wrong.status == 404 and wrong.code == "object_not_found"
    assert "Make sure the relevant pages and databases are shared with your integration" in str(
        wrong
    )
    assert api_error(lambda: notion.databases.retrieve(database_id=ids["ds"])).status == 404


def test_a_data_source_needs_exactly_one_title(fake: FakeNotion, notion: Client) -> None:
    parent = fake.create_parent_page()
    error = api_error(
        lambda: notion.databases.create(
            parent={"page_id": parent},
            title=text("Broken"),
            initial_data_source={"properties": {"A": {"rich_text": {}}}},
        )
    )
    assert error.code == "validation_error"
    missing = api_error(lambda: notion.databases.create(title=text("No parent")))
    assert str(missing) == (
        "body failed validation: body.parent should be defined, instead was `undefined`."
    )


def test_data_source_patch_renames_removes_and_replaces_options(
    fake: FakeNotion, notion: Client, ids: dict[str, str]
) -> None:
    page = create(
        notion,
        ids["ds"],
        "Hello",
        Body={"rich_text": text("kept")},
        To={"email": "a@b.com"},
        State={"select": {"name": "Failed"}},
    )
    before = fake.data_source(ids["ds"])["properties"]
    updated = notion.data_sources.update(
        data_source_id=ids["ds"],
        title=text("Renamed source"),
        properties={
            "Body": {"name": "Message"},
            "To": None,
            "State": {"select": {"options": [{"name": "Queued"}, {"name": "Paused"}]}},
            "Owner": {"rich_text": {}},
        },
    )
    props = updated["properties"]
    assert "Message" in props and "Body" not in props and "To" not in props and "Owner" in props
    assert [o["name"] for o in props["State"]["select"]["options"]] == ["Queued", "Paused"]
    assert props["Message"]["id"] == before["Body"]["id"]  # a rename keeps the property
    queued = before["State"]["select"]["options"][0]
    assert props["State"]["select"]["options"][0] == queued  # a kept option keeps id and colour
    assert notion.databases.retrieve(database_id=ids["db"])["data_sources"][0]["name"] == (
        "Renamed source"
    )

    read = notion.pages.retrieve(page_id=page["id"])["properties"]
    assert read["Message"]["rich_text"][0]["plain_text"] == "kept"
    assert "To" not in read and read["Owner"]["rich_text"] == []
    assert read["State"]["select"] is None  # its option was deleted with the replace
    error = api_error(
        lambda: notion.pages.update(page_id=page["id"], properties={"Body": {"rich_text": []}})
    )
    assert str(error) == "Body is not a property that exists."


# -------------------------------------------------------------------- pages


def test_page_read_form_has_every_property_normalised(
    clock: FakeClock, notion: Client, ids: dict[str, str]
) -> None:
    page = create(
        notion,
        ids["ds"],
        "Welcome",
        To={"email": "sarah@example.com"},
        Send_at={"date": {"start": "2026-05-01T11:00:00+02:00"}},
        Tags={"multi_select": [{"name": "vip"}, {"name": "new"}]},
    )
    assert list(page) == PAGE_FIELDS
    assert page["parent"] == {
        "type": "data_source_id",
        "data_source_id": ids["ds"],
        "database_id": ids["db"],
    }
    assert page["created_time"] == page["last_edited_time"] == "2026-05-01T09:00:00.000Z"
    assert page["created_by"]["object"] == "user" and page["in_trash"] is False
    props = page["properties"]
    assert list(props) == list(SCHEMA)
    assert props["Subject"] == {
        "id": "title",
        "type": "title",
        "title": [
            {
                "type": "text",
                "text": {"content": "Welcome", "link": None},
                "annotations": {
                    "bold": False,
                    "italic": False,
                    "strikethrough": False,
                    "underline": False,
                    "code": False,
                    "color": "default",
                },
                "plain_text": "Welcome",
                "href": None,
            }
        ],
    }
    assert props["Send at"]["date"] == {
        "start": "2026-05-01T11:00:00.000+02:00",
        "end": None,
        "time_zone": None,
    }
    assert props["To"]["email"] == "sarah@example.com"
    assert [t["name"] for t in props["Tags"]["multi_select"]] == ["vip", "new"]
    # empty values: null, [] or false, never missing
    assert props["Body"]["rich_text"] == [] and props["State"]["select"] is None
    assert props["Attempts"]["number"] is None and props["Approved"]["checkbox"] is False
    assert props["Link"]["url"] is None and props["Stage"]["status"] is None
    assert props["Created"]["created_time"] == "2026-05-01T09:00:00.000Z"

    clock.advance(minutes=3)
    notion.pages.update(page_id=page["id"], properties={"Attempts": {"number": 2}})
    again = notion.pages.retrieve(page_id=page["id"].replace("-", "").upper())
    assert again["last_edited_time"] == "2026-05-01T09:03:00.000Z"
    assert again["properties"]["Edited"]["last_edited_time"] == "2026-05-01T09:03:00.000Z"
    assert again["properties"]["Attempts"]["number"] == 2
    assert again["properties"]["To"]["email"] == "sarah@example.com"  # untouched


def test_dates_normalise_and_keep_their_offset(notion: Client, ids: dict[str, str]) -> None:
    def stored(value: dict[str, Any]) -> Any:
        page = create(notion, ids["ds"], "d", Send_at={"date": value})
        return page["properties"]["Send at"]["date"]

    assert stored({"start": "2026-05-01T09:00:00Z"})["start"] == "2026-05-01T09:00:00.000+00:00"
    assert stored({"start": "2026-05-01"}) == {
        "start": "2026-05-01",
        "end": None,
        "time_zone": None,
    }
    zoned = stored({"start": "2026-05-01T09:00:00", "time_zone": "Europe/Paris"})
    assert zoned == {"start": "2026-05-01T09:00:00.000", "end": None, "time_zone": "Europe/Paris"}
    error = api_error(
        lambda: stored({"start": "2026-05-01T09:00:00Z", "time_zone": "Europe/Paris"})
    )
    assert error.code == "validation_error"


def test_select_creates_unknown_options_but_status_does_not(
    notion: Client, ids: dict[str, str]
) -> None:
    page = create(notion, ids["ds"], "x", State={"select": {"name": "Paused"}})
    assert page["properties"]["State"]["select"]["name"] == "Paused"
    options = notion.data_sources.retrieve(data_source_id=ids["ds"])["properties"]["State"]
    assert "Paused" in [o["name"] for o in options["select"]["options"]]

    comma = api_error(lambda: create(notion, ids["ds"], "x", State={"select": {"name": "a,b"}}))
    assert comma.code == "validation_error"
    status = api_error(lambda: create(notion, ids["ds"], "x", Stage={"status": {"name": "Nope"}}))
    assert status.code == "validation_error"
    done = create(notion, ids["ds"], "x", Stage={"status": {"name": "Done"}})
    assert done["properties"]["Stage"]["status"]["name"] == "Done"


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"Nope": {"rich_text": []}}, "Nope is not a property that exists."),
        ({"State": {"rich_text": text("Queued")}}, "State is expected to be select."),
        ({"Attempts": {"number": "3"}}, "Attempts is expected to be number."),
        ({"Approved": {"checkbox": None}}, "Approved is expected to be checkbox."),
        (
            {"Body": {"rich_text": text("x" * 2001)}},
            "body failed validation: body.properties.Body.rich_text[0].text.content.length "
            "should be ≤ `2000`, instead was `2001`.",
        ),
        (
            {"Body": {"rich_text": text("😀" * 1001)}},
            "body failed validation: body.properties.Body.rich_text[0].text.content.length "
            "should be ≤ `2000`, instead was `2002`.",
        ),
        (
            {"To": {"email": "😀" * 98 + "@b.com"}},
            "body failed validation: body.properties.To.email.length should be ≤ `200`, "
            "instead was `202`.",
        ),
        (
            {"Body": {"rich_text": text("x") * 101}},
            "body failed validation: body.properties.Body.rich_text.length should be ≤ `100`, "
            "instead was `101`.",
        ),
        (
            {"To": {"email": "a" * 195 + "@b.com"}},
            "body failed validation: body.properties.To.email.length should be ≤ `200`, "
            "instead was `201`.",
        ),
        ({"Created": {"created_time": "2026-01-01T00:00:00Z"}}, None),
        ({"Edited": {"last_edited_time": "2026-01-01T00:00:00Z"}}, None),
    ],
)
def test_validation_errors(
    fake: FakeNotion,
    notion: Client,
    ids: dict[str, str],
    properties: dict[str, Any],
    message: str | None,
) -> None:
    error = api_error(
        lambda: notion.pages.create(parent={"data_source_id": ids["ds"]}, properties=properties)
    )
    assert error.status == 400 and error.code == "validation_error"
    if message is not None:
        assert str(error) == message
    assert fake.pages(ids["ds"]) == []  # nothing half-written
    with pytest.raises(NotionError):
        fake.edit_page(create(notion, ids["ds"], "ok")["id"], properties)


def test_trash_hides_a_page_and_blocks_edits(
    fake: FakeNotion, notion: Client, ids: dict[str, str]
) -> None:
    page = create(notion, ids["ds"], "Bin me")
    trashed = notion.pages.update(page_id=page["id"], in_trash=True)
    assert trashed["in_trash"] is True and trashed["archived"] is True
    assert query(notion, ids["ds"]) == []
    assert query(notion, ids["ds"], in_trash=True) == ["Bin me"]
    assert fake.pages(ids["ds"]) == [] and len(fake.pages(ids["ds"], include_trashed=True)) == 1
    error = api_error(
        lambda: notion.pages.update(page_id=page["id"], properties={"Attempts": {"number": 1}})
    )
    assert str(error) == (
        "Can't edit block that is archived. You must unarchive the block before editing."
    )
    notion.pages.update(page_id=page["id"], in_trash=False)
    assert query(notion, ids["ds"]) == ["Bin me"]
    fake.trash_page(page["id"])  # a marketer deletes the row in the UI
    assert query(notion, ids["ds"]) == []


def test_other_parents_database_id_and_page_id(
    fake: FakeNotion, notion: Client, ids: dict[str, str]
) -> None:
    via_db = notion.pages.create(parent={"database_id": ids["db"]}, properties=row("via db"))
    assert via_db["parent"]["data_source_id"] == ids["ds"]
    child = notion.pages.create(
        parent={"page_id": ids["parent"]}, properties={"title": text("Notes")}
    )
    assert child["parent"] == {"type": "page_id", "page_id": ids["parent"]}
    assert child["properties"]["title"]["title"][0]["plain_text"] == "Notes"
    assert fake.page(child["id"])["id"] == child["id"]


# -------------------------------------------------------------------- queries


@pytest.fixture
def rows(notion: Client, ids: dict[str, str]) -> dict[str, str]:
    made = {}
    specs = [
        ("a", "Queued", "2026-05-01T08:00:00Z", "ann@x.com", 0, True, "hello world"),
        ("b", "Queued", "2026-05-01T10:00:00+02:00", "bob@y.com", 1, True, "bye"),
        ("c", "Queued", None, "cat@x.com", 2, False, "hello there"),
        ("d", "Sent", "2026-04-30", "dan@x.com", 5, True, ""),
        ("e", "Failed", "2026-05-02T00:00:00Z", None, None, True, "world"),
    ]
    for subject, state, when, email, attempts, approved, body in specs:
        values: dict[str, Any] = {
            "State": {"select": {"name": state}},
            "Send_at": {"date": {"start": when} if when else None},
            "To": {"email": email},
            "Attempts": {"number": attempts},
            "Approved": {"checkbox": approved},
            "Body": {"rich_text": text(body) if body else []},
        }
        made[subject] = create(notion, ids["ds"], subject, **values)["id"]
    return made


def test_nested_and_or_filters(notion: Client, ids: dict[str, str], rows: dict[str, str]) -> None:
    due = {
        "and": [
            {"property": "State", "select": {"equals": "Queued"}},
            {"property": "Approved", "checkbox": {"equals": True}},
            {
                "or": [
                    {"property": "Send at", "date": {"on_or_before": "2026-05-01T08:00:00Z"}},
                    {"property": "Send at", "date": {"is_empty": True}},
                ]
            },
        ]
    }
    assert sorted(query(notion, ids["ds"], filter=due)) == ["a", "b"]  # b is 08:00Z too
    mixed = {
        "or": [
            {"property": "Body", "rich_text": {"contains": "hello"}},
            {
                "and": [
                    {"property": "Attempts", "number": {"greater_than_or_equal_to": 5}},
                    {"property": "To", "email": {"ends_with": "@x.com"}},
                ]
            },
        ]
    }
    assert sorted(query(notion, ids["ds"], filter=mixed)) == ["a", "c", "d"]

    def only(condition: dict[str, Any]) -> list[str]:
        return sorted(query(notion, ids["ds"], filter=condition))

    assert only({"property": "Body", "rich_text": {"is_empty": True}}) == ["d"]
    assert only({"property": "Subject", "title": {"equals": "e"}}) == ["e"]
    assert only({"property": "To", "email": {"starts_with": "bob"}}) == ["b"]
    assert only({"property": "To", "email": {"is_empty": True}}) == ["e"]
    assert only({"property": "Attempts", "number": {"less_than": 2}}) == ["a", "b"]
    assert only({"property": "Attempts", "number": {"is_empty": True}}) == ["e"]
    assert only({"property": "State", "select": {"does_not_equal": "Queued"}}) == ["d", "e"]
    assert only({"property": "Approved", "checkbox": {"does_not_equal": True}}) == ["c"]
    assert only({"property": "Tags", "multi_select": {"is_empty": True}}) == list("abcde")


def test_date_filter_semantics(notion: Client, ids: dict[str, str], rows: dict[str, str]) -> None:
    def only(**condition: str) -> list[str]:
        return sorted(query(notion, ids["ds"], filter={"property": "Send at", "date": condition}))

    # a and b are 2026-05-01T08:00Z, d is the date 2026-04-30, e is 2026-05-02T00:00Z
    assert only(equals="2026-05-01") == ["a", "b"]  # the whole UTC day
    assert only(before="2026-05-01") == ["d"]
    assert only(on_or_before="2026-05-01") == ["a", "b", "d"]
    assert only(after="2026-05-01") == ["e"]
    assert only(on_or_after="2026-05-01") == ["a", "b", "e"]
    assert only(equals="2026-05-01T10:00:00+02:00") == ["a", "b"]  # instants, not strings
    assert only(after="2026-05-01T08:00:00") == ["e"]  # no offset: UTC
    assert only(on_or_after="2026-04-30T00:00:00Z") == ["a", "b", "d", "e"]


def test_timestamp_and_relation_filters(
    clock: FakeClock, fake: FakeNotion, notion: Client, ids: dict[str, str]
) -> None:
    old = create(notion, ids["ds"], "old")
    clock.advance(minutes=10)
    new = create(notion, ids["ds"], "new")
    since = {"timestamp": "created_time", "created_time": {"on_or_after": "2026-05-01T09:05:00Z"}}
    assert query(notion, ids["ds"], filter=since) == ["new"]
    fake.edit_page(old["id"], {"Attempts": {"number": 1}})
    edited = {
        "and": [
            {"timestamp": "last_edited_time", "last_edited_time": {"after": "2026-05-01T09:05Z"}},
            {"property": "Created", "created_time": {"before": "2026-05-01T09:05:00Z"}},
        ]
    }
    assert query(notion, ids["ds"], filter=edited) == ["old"]

    notion.data_sources.update(
        data_source_id=ids["ds"],
        properties={
            "Link to": {"relation": {"data_source_id": ids["ds"], "type": "single_property"}}
        },
    )
    notion.pages.update(
        page_id=new["id"], properties={"Link to": {"relation": [{"id": old["id"]}]}}
    )
    read = notion.pages.retrieve(page_id=new["id"])["properties"]["Link to"]
    assert read["relation"] == [{"id": old["id"]}] and read["has_more"] is False
    assert read["type"] == "relation"
    linked = {"property": "Link to", "relation": {"contains": old["id"].replace("-", "")}}
    assert query(notion, ids["ds"], filter=linked) == ["new"]
    unlinked = {"property": "Link to", "relation": {"is_empty": True}}
    assert query(notion, ids["ds"], filter=unlinked) == ["old"]


def test_bad_filters_are_400(notion: Client, ids: dict[str, str]) -> None:
    def reason(condition: Any, **kwargs: Any) -> str:
        error = api_error(
            lambda: notion.data_sources.query(data_source_id=ids["ds"], filter=condition, **kwargs)
        )
        assert error.status == 400 and error.code == "validation_error"
        return str(error)

    assert (
        reason({"property": "state", "select": {"equals": "Queued"}})
        == "Could not find property with name or id: state"
    )
    leaf = {"property": "State", "select": {"equals": "Queued"}}
    reason({"and": [{"or": [{"and": [leaf]}]}]})  # three levels
    reason({"timestamp": "created_time", "property": "Created", "created_time": {"after": "x"}})
    reason({"property": "State", "rich_text": {"equals": "Queued"}})
    reason({"property": "Attempts", "number": {"equals": "3"}})
    reason({"and": [leaf] * 101})
    page_size = api_error(
        lambda: notion.data_sources.query(data_source_id=ids["ds"], page_size=101)
    )
    assert page_size.code == "validation_error"
    # two levels are fine
    notion.data_sources.query(data_source_id=ids["ds"], filter={"or": [{"and": [leaf]}, leaf]})


def test_sorts_take_precedence_in_order_and_empties_go_last(
    notion: Client, ids: dict[str, str], rows: dict[str, str]
) -> None:
    ordered = query(
        notion,
        ids["ds"],
        sorts=[
            {"property": "State", "direction": "ascending"},
            {"property": "Attempts", "direction": "descending"},
        ],
    )
    assert ordered == ["c", "b", "a", "d", "e"]
    assert query(notion, ids["ds"], sorts=[{"property": "Attempts", "direction": "ascending"}]) == [
        "a",
        "b",
        "c",
        "d",
        "e",  # empty last
    ]
    by_time = [{"property": "Send at", "direction": "ascending"}]
    assert query(notion, ids["ds"], sorts=by_time) == ["d", "a", "b", "e", "c"]  # ties: creation
    assert query(
        notion, ids["ds"], sorts=[{"timestamp": "created_time", "direction": "descending"}]
    ) == ["e", "d", "c", "b", "a"]
    error = api_error(
        lambda: notion.data_sources.query(
            data_source_id=ids["ds"], sorts=[{"property": "Nope", "direction": "ascending"}]
        )
    )
    assert error.code == "validation_error"


def test_property_ids_work_as_keys(notion: Client, ids: dict[str, str]) -> None:
    schema = notion.data_sources.retrieve(data_source_id=ids["ds"])["properties"]
    attempts, state = schema["Attempts"]["id"], schema["State"]["id"]
    page = notion.pages.create(
        parent={"data_source_id": ids["ds"]},
        properties={
            "title": text("by id"),
            attempts: {"number": 7},
            state: {"select": {"name": "Sent"}},
        },
    )
    assert page["properties"]["Attempts"]["number"] == 7
    found = query(
        notion,
        ids["ds"],
        filter={"property": attempts, "number": {"equals": 7}},
        sorts=[{"property": state, "direction": "ascending"}],
    )
    assert found == ["by id"]


def test_unsorted_order_is_deterministic_but_not_insertion_order(clock: FakeClock) -> None:
    def run() -> list[str]:
        fake = FakeNotion(clock, token=TOKEN, seed=7)
        parent = fake.create_parent_page()
        _, ds = fake.create_database(parent, "Q", {"Subject": {"title": {}}})
        client = make_client(fake.transport())
        for i in range(20):
            create(client, ds, f"{i:02}")
        result = query(client, ds)
        client.close()
        return result

    first = run()
    assert first == run()
    assert first != sorted(first) and sorted(first) == [f"{i:02}" for i in range(20)]


def test_pagination_over_250_pages(fake: FakeNotion, notion: Client, ids: dict[str, str]) -> None:
    for i in range(250):
        create(notion, ids["ds"], f"{i:03}", Attempts={"number": i})
    sorts = [{"property": "Attempts", "direction": "ascending"}]
    first = notion.data_sources.query(data_source_id=ids["ds"], sorts=sorts)
    assert len(first["results"]) == 100 and first["has_more"] is True
    assert first["type"] == "page_or_data_source" and first["page_or_data_source"] == {}
    second = notion.data_sources.query(
        data_source_id=ids["ds"], sorts=sorts, start_cursor=first["next_cursor"], page_size=100
    )
    third = notion.data_sources.query(
        data_source_id=ids["ds"], sorts=sorts, start_cursor=second["next_cursor"]
    )
    assert len(third["results"]) == 50 and third["has_more"] is False
    assert third["next_cursor"] is None
    assert subjects(first["results"] + second["results"] + third["results"]) == [
        f"{i:03}" for i in range(250)
    ]
    everything = collect_paginated_api(
        notion.data_sources.query, data_source_id=ids["ds"], page_size=7
    )
    assert sorted(subjects(everything)) == [f"{i:03}" for i in range(250)]
    error = api_error(
        lambda: notion.data_sources.query(data_source_id=ids["ds"], start_cursor="bogus")
    )
    assert error.code == "validation_error"
    assert fake.count("query") == 3 + 36 + 1 and fake.count("create_page", 200) == 250


def test_edit_page_is_what_the_next_query_sees(
    fake: FakeNotion, notion: Client, ids: dict[str, str], rows: dict[str, str]
) -> None:
    queued = {"property": "State", "select": {"equals": "Queued"}}
    assert sorted(query(notion, ids["ds"], filter=queued)) == ["a", "b", "c"]
    before = len(fake.requests)
    fake.edit_page(rows["b"], {"State": {"select": {"name": "Sent"}}})
    assert len(fake.requests) == before  # helpers are not API requests
    assert sorted(query(notion, ids["ds"], filter=queued)) == ["a", "c"]
    assert fake.page(rows["b"])["properties"]["State"]["select"]["name"] == "Sent"


def test_block_children_list_child_databases(
    fake: FakeNotion, notion: Client, ids: dict[str, str]
) -> None:
    second, _ = fake.create_database(ids["parent"], "Templates", {"Name": {"title": {}}})
    first = notion.blocks.children.list(block_id=ids["parent"], page_size=1)
    assert first["type"] == "block" and first["has_more"] is True
    block = first["results"][0]
    assert block["object"] == "block" and block["type"] == "child_database"
    assert block["id"] == ids["db"] and block["child_database"] == {"title": "Email queue"}
    assert block["has_children"] is False
    rest = notion.blocks.children.list(block_id=ids["parent"], start_cursor=first["next_cursor"])
    assert [b["id"] for b in rest["results"]] == [second] and rest["has_more"] is False


# -------------------------------------------------------------------- protocol


def test_headers_routes_and_bodies(fake: FakeNotion, ids: dict[str, str]) -> None:
    raw = httpx.Client(transport=fake.transport(), base_url="https://api.notion.com")
    good = {"Authorization": f"Bearer {TOKEN}", "Notion-Version": "2025-09-03"}

    missing_auth = raw.get(f"/v1/databases/{ids['db']}", headers={"Notion-Version": "2025-09-03"})
    assert missing_auth.status_code == 401
    assert missing_auth.json()["code"] == "unauthorized"
    assert missing_auth.json()["message"] == "API token is invalid."
    wrong = raw.get(f"/v1/databases/{ids['db']}", headers={**good, "Authorization": "Bearer x"})
    assert wrong.status_code == 401
    no_version = raw.get(
        f"/v1/databases/{ids['db']}", headers={"Authorization": good["Authorization"]}
    )
    assert no_version.status_code == 400 and no_version.json()["code"] == "missing_version"

    unknown = raw.post(f"/v1/databases/{ids['db']}/query", headers=good, json={})
    assert unknown.status_code == 400
    assert unknown.json() == {
        "object": "error",
        "status": 400,
        "code": "invalid_request_url",
        "message": "Invalid request URL.",
        "request_id": unknown.json()["request_id"],
    }
    assert unknown.headers["content-type"] == "application/json; charset=utf-8"
    bad_json = raw.post(f"/v1/data_sources/{ids['ds']}/query", headers=good, content=b"{nope")
    assert bad_json.status_code == 400 and bad_json.json()["code"] == "invalid_json"
    doubled = raw.get(f"https://api.notion.com//v1/databases/{ids['db']}", headers=good)
    assert doubled.status_code == 200 and doubled.json()["id"] == ids["db"]
    raw.close()

    assert [(r.kind, r.status) for r in fake.requests[-6:]] == [
        ("retrieve_database", 401),
        ("retrieve_database", 401),
        ("retrieve_database", 400),
        ("other", 400),
        ("query", 400),
        ("retrieve_database", 200),
    ]
    assert fake.count("retrieve_database", 401) == 2 and fake.count("other") == 1
    assert fake.requests[-1].path == f"/v1/databases/{ids['db']}"


# -------------------------------------------------------------------- limits and faults


def test_rate_limit_answers_429_with_retry_after(clock: FakeClock) -> None:
    fake = FakeNotion(clock, token=TOKEN, rate_limit=1, burst=2)
    parent = fake.create_parent_page()  # helpers don't spend tokens
    _, ds = fake.create_database(parent, "Q", {"Name": {"title": {}}})
    notion = make_client(fake.transport())
    notion.data_sources.query(data_source_id=ds)
    notion.data_sources.query(data_source_id=ds)
    error = api_error(lambda: notion.data_sources.query(data_source_id=ds))
    assert error.status == 429 and error.code == "rate_limited"
    assert error.headers["retry-after"] == "1"
    assert error.additional_data == {
        "rate_limit_reason": "public_api_request_rate_limit",
        "retry_after": "1",
    }
    clock.advance(1)
    notion.data_sources.query(data_source_id=ds)
    assert fake.count("query", 429) == 1 and fake.count("query", 200) == 3
    notion.close()


def test_fail_next_by_kind_times_and_retry_after(
    fake: FakeNotion, notion: Client, ids: dict[str, str]
) -> None:
    fake.fail_next("update_page", status=500, times=2, retry_after=4)
    page = create(notion, ids["ds"], "x")  # another kind: unaffected
    for _ in range(2):
        error = api_error(
            lambda: notion.pages.update(page_id=page["id"], properties={"Attempts": {"number": 1}})
        )
        assert error.status == 500 and error.code == "internal_server_error"
        assert error.headers["retry-after"] == "4" and error.request_id
    assert fake.page(page["id"])["properties"]["Attempts"]["number"] is None
    notion.pages.update(page_id=page["id"], properties={"Attempts": {"number": 1}})
    assert fake.count("update_page", 500) == 2 and fake.count("update_page", 200) == 1

    fake.fail_next(status=502, code="bad_gateway", html=True)
    with pytest.raises(UnknownHTTPResponseError) as html:
        notion.pages.retrieve(page_id=page["id"])
    assert html.value.status == 502 and "cloudflare" in html.value.body
    fake.fail_next(status=529, code="service_overload")
    with pytest.raises(UnknownHTTPResponseError):
        notion.pages.retrieve(page_id=page["id"])


def test_a_committed_write_can_still_fail(
    fake: FakeNotion, notion: Client, ids: dict[str, str]
) -> None:
    fake.fail_next("create_page", status=503, code="service_unavailable", commit=True)
    error = api_error(lambda: create(notion, ids["ds"], "ghost"))
    assert error.status == 503 and error.code == "service_unavailable"
    [page] = fake.pages(ids["ds"])
    assert error.additional_data is not None
    assert error.additional_data["committed_resource_id"] == page["id"]

    fake.fail_next("create_page", timeout=True, commit=True)
    with pytest.raises(RequestTimeoutError):
        create(notion, ids["ds"], "ghost 2")
    assert sorted(subjects(fake.pages(ids["ds"]))) == ["ghost", "ghost 2"]
    assert fake.requests[-1].status == 0

    fake.fail_next("create_page", timeout=True)  # not committed: nothing written
    with pytest.raises(RequestTimeoutError):
        create(notion, ids["ds"], "never")
    assert len(fake.pages(ids["ds"])) == 2


def test_random_faults_are_seeded(clock: FakeClock) -> None:
    def pattern() -> list[int]:
        fake = FakeNotion(clock, token=TOKEN, seed=3)
        parent = fake.create_parent_page()
        _, ds = fake.create_database(parent, "Q", {"Name": {"title": {}}})
        fake.random_faults(0.5, kinds=["query"], statuses=[(500, "internal_server_error")])
        notion = make_client(fake.transport())
        for _ in range(30):
            with contextlib.suppress(APIResponseError):
                notion.data_sources.query(data_source_id=ds)
        fake.random_faults(0)
        notion.data_sources.query(data_source_id=ds)
        notion.close()
        assert fake.requests[-1].status == 200
        return [r.status for r in fake.requests]

    first = pattern()
    assert first == pattern() and 5 < first.count(500) < 25
    with pytest.raises(ValueError, match="unknown request kind"):
        FakeNotion(clock).fail_next("create_pages")


def test_take_down_refuses_connections_until_brought_up(
    fake: FakeNotion, notion: Client, ids: dict[str, str]
) -> None:
    fake.take_down()
    with pytest.raises(httpx.ConnectError):
        notion.databases.retrieve(database_id=ids["db"])
    assert fake.count("retrieve_database") == 0
    fake.bring_up()
    assert notion.databases.retrieve(database_id=ids["db"])["id"] == ids["db"]


# -------------------------------------------------------------------- transports


def test_served_on_loopback_with_a_real_http_client() -> None:
    fake = FakeNotion(token=TOKEN)
    parent = fake.create_parent_page()
    _, ds = fake.create_database(parent, "Q", {"Name": {"title": {}}})
    fake.latency = (0.001, 0.002)
    with fake.serve() as url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        notion = make_client(httpx.HTTPTransport(), base_url=url + "/")  # `//v1/` paths too
        created = notion.pages.create(
            parent={"data_source_id": ds}, properties={"Name": {"title": text("over HTTP")}}
        )
        assert notion.pages.retrieve(page_id=created["id"])["id"] == created["id"]
        error = api_error(lambda: notion.pages.retrieve(page_id=ds))
        assert error.status == 404
        fake.fail_next("retrieve_page", timeout=True)
        with pytest.raises(httpx.TransportError):
            notion.pages.retrieve(page_id=created["id"])
        notion.close()
    assert fake.count("create_page", 200) == 1


def test_async_client_over_the_mock_transport(fake: FakeNotion, ids: dict[str, str]) -> None:
    async def main() -> dict[str, Any]:
        client = AsyncClient(
            auth=TOKEN,
            base_url="https://api.notion.com",
            client=httpx.AsyncClient(transport=fake.transport()),
            retry=False,
            logger=LOGGER,
        )
        try:
            result: dict[str, Any] = await client.data_sources.query(data_source_id=ids["ds"])
            return result
        finally:
            await client.aclose()

    assert asyncio.run(main())["results"] == []

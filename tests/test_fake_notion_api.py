"""The fake Notion API answers like the real one, as seen through the real notion-client."""

from __future__ import annotations

import httpx
import pytest
from notion_client import Client
from notion_client.errors import APIResponseError, RequestTimeoutError

from notion_queue.clock import FakeClock
from notion_queue.pacing import TokenBucket
from notion_queue.testing.fake_notion import FakeNotion
from tests.raw_notion import raw_client

TOKEN = "secret_fake_api"
SCHEMA = {
    "Name": {"title": {}},
    "Email": {"email": {}},
    "Status": {"select": {"options": [{"name": "queued", "color": "blue"}]}},
    "When": {"date": {}},
    "N": {"number": {"format": "number"}},
    "Done": {"checkbox": {}},
    "Key": {"rich_text": {}},
}


@pytest.fixture
def fake(clock: FakeClock) -> FakeNotion:
    return FakeNotion(clock, token=TOKEN)


@pytest.fixture
def client(fake: FakeNotion) -> Client:
    return raw_client(fake)


@pytest.fixture
def ds(fake: FakeNotion) -> str:
    return fake.create_database(fake.create_parent_page(), "Queue", SCHEMA)[1]


def add(client: Client, ds: str, n: int, **extra: object) -> dict[str, object]:
    properties = {
        "Name": {"title": [{"text": {"content": f"row {n}"}}]},
        "N": {"number": n},
        "Status": {"select": {"name": "queued"}},
        **extra,
    }
    return client.pages.create(parent={"data_source_id": ds}, properties=properties)  # type: ignore[no-any-return]


def test_pages_show_every_property_normalised(client: Client, ds: str) -> None:
    page = add(client, ds, 1, When={"date": {"start": "2025-12-01T10:00:00Z"}})
    props = page["properties"]  # type: ignore[index]
    assert props["Email"] == {"id": props["Email"]["id"], "type": "email", "email": None}
    assert props["When"]["date"] == {
        "start": "2025-12-01T10:00:00.000+00:00",
        "end": None,
        "time_zone": None,
    }
    assert props["Name"]["title"][0]["plain_text"] == "row 1"
    assert props["Done"]["checkbox"] is False
    assert page["parent"]["type"] == "data_source_id"  # type: ignore[index]
    assert page["created_time"].endswith(":00.000Z")  # type: ignore[union-attr]


def test_nested_filters_sorts_and_cursor_pagination(client: Client, ds: str) -> None:
    for n in range(250):
        add(client, ds, n, Done={"checkbox": n % 2 == 0})
    seen: list[int] = []
    cursor = None
    while True:
        kwargs = {"start_cursor": cursor} if cursor else {}
        response = client.data_sources.query(
            ds,
            filter={
                "and": [
                    {"property": "Status", "select": {"equals": "queued"}},
                    {
                        "or": [
                            {"property": "Done", "checkbox": {"equals": True}},
                            {"property": "N", "number": {"less_than": 3}},
                        ]
                    },
                ]
            },
            sorts=[{"property": "N", "direction": "descending"}],
            **kwargs,
        )
        seen += [p["properties"]["N"]["number"] for p in response["results"]]
        if not response["has_more"]:
            break
        cursor = response["next_cursor"]
    assert seen == sorted({n for n in range(250) if n % 2 == 0 or n < 3}, reverse=True)


def test_validation_errors_carry_notions_wording(client: Client, ds: str) -> None:
    with pytest.raises(APIResponseError) as unknown:
        add(client, ds, 1, Nope={"rich_text": []})
    with pytest.raises(APIResponseError) as wrong_type:
        add(client, ds, 1, N={"rich_text": []})
    with pytest.raises(APIResponseError) as bad_filter:
        client.data_sources.query(ds, filter={"property": "status", "select": {"equals": "x"}})
    assert unknown.value.code == "validation_error"
    assert str(unknown.value) == "Nope is not a property that exists."
    assert str(wrong_type.value) == "N is expected to be number."
    assert str(bad_filter.value) == "Could not find property with name or id: status"


def test_database_ids_are_not_data_source_ids(client: Client, fake: FakeNotion, ds: str) -> None:
    database_id = fake.data_source(ds)["parent"]["database_id"]
    with pytest.raises(APIResponseError) as error:
        client.data_sources.query(database_id)
    assert error.value.status == 404 and error.value.code == "object_not_found"
    assert client.databases.retrieve(database_id=database_id)["data_sources"][0]["id"] == ds


def test_rate_limit_answers_429_with_retry_after(
    client: Client, fake: FakeNotion, clock: FakeClock, ds: str
) -> None:
    fake._bucket = TokenBucket(clock, 3, 3)
    for n in range(3):
        add(client, ds, n)
    with pytest.raises(APIResponseError) as error:
        add(client, ds, 4)
    assert error.value.status == 429 and error.value.code == "rate_limited"
    assert error.value.headers["retry-after"] == "1"
    clock.advance(1)
    add(client, ds, 4)


def test_faults_commit_then_fail_and_time_out(client: Client, fake: FakeNotion, ds: str) -> None:
    fake.fail_next("create_page", status=503, code="service_unavailable", commit=True)
    with pytest.raises(APIResponseError) as error:
        add(client, ds, 1)
    committed = error.value.additional_data["committed_resource_id"]  # type: ignore[index]
    assert fake.page(committed)["properties"]["N"]["number"] == 1
    fake.fail_next("query", timeout=True)
    with pytest.raises(RequestTimeoutError):
        client.data_sources.query(ds)
    fake.take_down()
    with pytest.raises(httpx.ConnectError):
        client.data_sources.query(ds)


def test_auth_and_routes(fake: FakeNotion) -> None:
    http = httpx.Client(transport=fake.transport(), base_url="https://api.notion.com")
    assert (
        http.get("/v1/pages/x", headers={"Notion-Version": "2025-09-03"}).json()["code"]
        == "unauthorized"
    )
    headers = {"Authorization": f"Bearer {TOKEN}", "Notion-Version": "2025-09-03"}
    assert http.get("/v1/nowhere", headers=headers).json()["code"] == "invalid_request_url"
    assert (
        http.get("/v1/pages/x", headers={"Authorization": f"Bearer {TOKEN}"}).json()["code"]
        == "missing_version"
    )


def test_list_views_answers_references_and_retrieve_answers_the_view(
    client: Client, fake: FakeNotion, ds: str
) -> None:
    database_id = fake.data_source(ds)["parent"]["database_id"]
    created = client.views.create(
        database_id=database_id,
        data_source_id=ds,
        name="Due next",
        type="table",
        sorts=[{"property": "When", "direction": "ascending"}],
    )

    listed = client.views.list(database_id=database_id)
    view = client.views.retrieve(view_id=listed["results"][0]["id"])

    # As notion-sdk-js's ListDatabaseViewsResponse: references only, no names.
    assert listed["results"] == [{"object": "view", "id": created["id"]}]
    assert (listed["type"], listed["view"]) == ("view", {})
    assert view["name"] == "Due next" and view["data_source_id"] == ds
    assert view["parent"] == {"type": "database_id", "database_id": database_id}
    assert view["created_time"].endswith(":00.000Z") and view["url"]
    assert [v["name"] for v in fake.views(database_id)] == ["Due next"]
    with pytest.raises(APIResponseError) as missing:
        client.views.retrieve(view_id="00000000-0000-4000-8000-000000000000")
    assert missing.value.status == 404 and missing.value.code == "object_not_found"

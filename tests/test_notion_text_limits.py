"""Rich text as Notion measures it: 2 000 UTF-16 code units per item (an emoji is two), at most
100 items per value. Long text is split to fit, never cut inside an emoji, and never dropped."""

from __future__ import annotations

import pytest

from notion_queue.clock import FakeClock
from notion_queue.errors import PermanentError
from notion_queue.models import ContactData, RowUpdate, Template
from notion_queue.store import notion_schema as s
from tests.conftest import make_notion_world, new_row

EMOJI = "😀"  # one Python character, two UTF-16 code units


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_each_item_fits_notions_limit_counted_in_utf16_and_no_emoji_is_cut() -> None:
    value = "a" + EMOJI * 2500  # 5 001 UTF-16 units

    items = [item["text"]["content"] for item in s.text(value)["rich_text"]]

    assert "".join(items) == value
    assert all(utf16(item) <= 2000 for item in items)
    assert [utf16(item) for item in items] == [1999, 2000, 1002]  # an emoji never straddles


def test_text_without_emoji_is_split_every_2000_characters() -> None:
    items = [item["text"]["content"] for item in s.text("x" * 4500)["rich_text"]]
    assert [len(item) for item in items] == [2000, 2000, 500]


def test_long_variables_with_emoji_are_written_to_notion_and_read_back_whole(
    clock: FakeClock,
) -> None:
    world = make_notion_world(clock)
    note = "Merci 🎄 " * 900  # 7 200 characters, 8 100 UTF-16 units

    row = world.store.add_row(new_row(variables={"note": note}))

    assert world.store.get_row(row.id).variables() == {"note": note}


def test_variables_notion_cannot_hold_are_refused_naming_the_property(clock: FakeClock) -> None:
    world = make_notion_world(clock)

    with pytest.raises(PermanentError) as refused:
        world.store.add_row(new_row(variables={"note": "x" * 200_001}))

    assert str(refused.value).startswith("Variables is too long for Notion")
    assert "100 rich-text items of 2000" in str(refused.value)
    assert world.fake.pages(world.data_source_ids["Email Queue"]) == []


def test_a_template_body_notion_cannot_hold_is_refused_naming_the_property(
    clock: FakeClock,
) -> None:
    world = make_notion_world(clock)
    huge = Template("big_email", "Hello", "<p>" + EMOJI * 100_001 + "</p>")

    with pytest.raises(PermanentError, match=r"^HTML Body is too long for Notion"):
        world.store.upsert_template(huge)


def test_a_huge_error_message_is_cut_where_it_says_so(clock: FakeClock) -> None:
    world = make_notion_world(clock)
    row = world.store.add_row(new_row())

    world.store.update_row(row.id, RowUpdate(error_message="E" + EMOJI * 150_000))

    stored = world.store.get_row(row.id).error_message
    assert stored.startswith("E" + EMOJI * 900)
    assert stored.endswith(" … (cut: the whole message is 150001 characters)")
    assert utf16(stored) <= 2000


def test_a_title_is_cut_to_one_item_without_splitting_an_emoji() -> None:
    [item] = s.title(EMOJI * 1500)["title"]
    assert utf16(item["text"]["content"]) <= 2000
    assert item["text"]["content"].endswith("…")
    assert set(item["text"]["content"][:-1]) == {EMOJI}


def test_assessment_data_notion_cannot_hold_is_refused_naming_the_property(
    clock: FakeClock,
) -> None:
    world = make_notion_world(clock)
    data = ContactData(email="lead@example.com", assessment_data={"notes": "x" * 200_001})

    with pytest.raises(PermanentError, match=r"^Assessment Data is too long for Notion"):
        world.store.upsert_contact(data)

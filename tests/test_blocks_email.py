"""blocks_email.render_blocks: each supported block and annotation as a recipient sees it, in
the HTML part and the plain-text part."""

from __future__ import annotations

import json
from typing import Any

import pytest

from notion_queue.blocks_email import render_blocks, with_page_body
from notion_queue.errors import RenderError
from notion_queue.html_blocks import body_hash, html_to_blocks
from notion_queue.models import Template
from notion_queue.render import render


def text(content: str, *, link: str | None = None, **annotations: Any) -> dict[str, Any]:
    """A rich-text item as Notion answers it (read format)."""
    return {
        "type": "text",
        "text": {"content": content, "link": {"url": link} if link else None},
        "annotations": {"color": "default", **annotations},
        "plain_text": content,
        "href": link,
    }


def block(kind: str, *items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"object": "block", "type": kind, kind: {"rich_text": list(items), **extra}}


def sent(blocks: list[dict[str, Any]], **variables: Any) -> tuple[str, str]:
    template = with_page_body(Template("t", "Subject", "", blocks=json.dumps(blocks)))
    email = render(template, {"first_name": "Sam", **variables})
    return email.html, email.text


def test_annotations_become_inline_markup() -> None:
    html, plain = sent(
        [
            block(
                "paragraph",
                text("b", bold=True),
                text("i", italic=True),
                text("u", underline=True),
                text("s", strikethrough=True),
                text("c", code=True),
                text("red", color="red"),
                text("hl", color="yellow_background"),
            )
        ]
    )

    assert "<strong>b</strong><em>i</em><u>u</u><s>s</s>" in html
    assert "<code " in html and ">c</code>" in html
    assert '<span style="color:#b91c1c">red</span>' in html
    assert '<span style="background-color:#fef9c3">hl</span>' in html
    assert plain == "biuscredhl\n"


def test_numbered_lists_nest_and_count_in_both_parts() -> None:
    html, plain = sent(
        [
            block(
                "numbered_list_item",
                text("one"),
                children=[block("bulleted_list_item", text("detail"))],
            ),
            block("numbered_list_item", text("two")),
        ]
    )

    assert html.count("<ol ") == 1 and "<ul " in html and html.count("<li ") == 3
    assert plain == "1. one\n  - detail\n2. two\n"


def test_quote_divider_image_and_bookmark() -> None:
    html, plain = sent(
        [
            block("quote", text("Said well")),
            {"type": "divider", "divider": {}},
            {
                "type": "image",
                "image": {
                    "type": "external",
                    "external": {"url": "https://businessx.com/a.png"},
                    "caption": [text("Our team")],
                },
            },
            {
                "type": "bookmark",
                "bookmark": {"url": "https://businessx.com/guide", "caption": []},
            },
        ]
    )

    assert "<blockquote " in html and "Said well</blockquote>" in html
    assert "<hr " in html
    assert '<img src="https://businessx.com/a.png" alt="Our team"' in html
    assert '<a href="https://businessx.com/guide"' in html
    assert "> Said well" in plain and "---" in plain and "Our team" in plain
    assert "https://businessx.com/guide" in plain


def test_headings_stand_on_their_own_lines_in_the_text_part() -> None:
    _, plain = render_blocks([block("heading_3", text("Title")), block("paragraph", text("Body"))])

    assert plain == "Title\n\nBody\n"


def test_an_image_uploaded_to_notion_is_refused_by_name() -> None:
    uploaded = {
        "type": "image",
        "image": {"type": "file", "file": {"url": "https://s3/x", "expiry_time": "2025"}},
    }

    with pytest.raises(RenderError, match="uploaded to Notion: use an external image URL"):
        render_blocks([uploaded])


def test_a_variable_typed_as_the_whole_link_is_a_variable_link() -> None:
    html, plain = sent(
        [block("paragraph", text("Read "), text("it", link="{{ calendly_link }}"))],
        calendly_link="https://calendly.com/x",
    )

    assert '<a href="https://calendly.com/x"' in html
    assert plain == "Read it (https://calendly.com/x)\n"


def test_text_that_looks_like_html_is_shown_not_run() -> None:
    html, _ = sent([block("paragraph", text('<script>alert(1)</script> & "quotes"'))])

    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in html and "<script>" not in html


def test_the_seeded_hash_sees_a_changed_word_not_ids_or_times() -> None:
    written = html_to_blocks("<p>Hi <strong>{{ first_name }}</strong></p>")
    read_back = [
        {
            "object": "block",
            "id": "b1",
            "created_time": "2025-12-01T10:00:00.000Z",
            "type": "paragraph",
            "paragraph": {
                "rich_text": [text("Hi "), text("{{ first_name }}", bold=True)],
                "color": "default",
            },
        }
    ]
    edited = html_to_blocks("<p>Hello <strong>{{ first_name }}</strong></p>")

    assert body_hash("S", "", written) == body_hash("S", "", read_back)
    assert body_hash("S", "", written) != body_hash("S", "", edited)


def test_a_long_packaged_paragraph_fits_notions_rich_text_limit() -> None:
    [paragraph] = html_to_blocks("<p>" + "word " * 1000 + "</p>")

    items = paragraph["paragraph"]["rich_text"]
    assert len(items) > 1 and all(len(i["text"]["content"]) <= 2000 for i in items)
    assert "".join(i["text"]["content"] for i in items) == ("word " * 1000).strip()

"""The packaged HTML templates as Notion blocks, so seeding writes a document a marketer reads,
and a content hash that tells a page the seed wrote from one a marketer has edited since.

The packaged HTML uses a small set of tags: p (a styled p is small grey print), a, br, strong,
ul/li. A link to a variable becomes `https://variable.invalid/<name>` (blocks_email.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser
from typing import Any

from notion_queue.blocks_email import VARIABLE_LINK_PREFIX, item_link, item_text, link_target

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_DEFAULTS: dict[str, Any] = {"bold": False, "italic": False, "strikethrough": False}
_DEFAULTS |= {"underline": False, "code": False, "color": "default"}


class _Blocks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[dict[str, Any]] = []
        self._items: list[dict[str, Any]] | None = None
        self._kind = "paragraph"
        self._bold = 0
        self._href: str | None = None
        self._grey = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("p", "li"):
            self._items, self._kind = [], "paragraph" if tag == "p" else "bulleted_list_item"
            self._grey = tag == "p" and "font-size" in (values.get("style") or "")
        elif tag == "strong":
            self._bold += 1
        elif tag == "a":
            self._href = _link(values.get("href") or "")
        elif tag == "br":
            self._add("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("p", "li") and self._items is not None:
            items = _trimmed(self._items)
            self.blocks.append({"type": self._kind, self._kind: {"rich_text": items}})
            self._items = None
        elif tag == "strong":
            self._bold -= 1
        elif tag == "a":
            self._href = None

    def handle_data(self, data: str) -> None:
        if self._items is None and data.strip():  # a Jinja statement between blocks
            self.blocks.append(
                {"type": "paragraph", "paragraph": {"rich_text": [_plain(data.strip())]}}
            )
            return
        self._add(re.sub(r"\s+", " ", data))

    def _add(self, text: str) -> None:
        if self._items is None or not text:
            return
        annotations: dict[str, Any] = {}
        if self._bold:
            annotations["bold"] = True
        if self._grey:
            annotations["color"] = "gray"
        # Notion holds at most 2 000 characters (UTF-16 units) in one rich-text item.
        for start in range(0, len(text), 1000):
            item: dict[str, Any] = {"type": "text", "text": {"content": text[start : start + 1000]}}
            if self._href:
                item["text"]["link"] = {"url": self._href}
            if annotations:
                item["annotations"] = annotations
            self._items.append(item)


def _plain(text: str) -> dict[str, Any]:
    return {"type": "text", "text": {"content": text}}


def _link(href: str) -> str:
    match = _VARIABLE.fullmatch(href.strip())
    return VARIABLE_LINK_PREFIX + match.group(1) if match else href


def _trimmed(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """No blank at the start or end of a block, none next to a line break."""
    for i, item in enumerate(items):
        content = item["text"]["content"]
        if i == 0 or items[i - 1]["text"]["content"].endswith("\n"):
            content = content.lstrip(" ")
        if i == len(items) - 1 or items[i + 1]["text"]["content"].startswith("\n"):
            content = content.rstrip(" ")
        item["text"]["content"] = content
    return [item for item in items if item["text"]["content"]]


def html_to_blocks(html: str) -> list[dict[str, Any]]:
    """Blocks in Notion's write format for one packaged template's HTML."""
    parser = _Blocks()
    parser.feed(html)
    parser.close()
    return parser.blocks


def canonical(blocks: list[dict[str, Any]]) -> list[Any]:
    """What a reader sees of a page body, in the write or the read format alike: types, text,
    links, annotations, urls, nesting (not ids nor times)."""
    out: list[Any] = []
    for block in blocks:
        kind = str(block.get("type"))
        content = block.get(kind) if isinstance(block.get(kind), dict) else {}
        assert isinstance(content, dict)
        runs: list[list[Any]] = []
        for item in content.get("rich_text") or []:
            notes = {**_DEFAULTS, **(item.get("annotations") or {})}
            url = item_link(item)
            key = [link_target(url) if url else None, sorted(notes.items())]
            if runs and runs[-1][1:] == key:
                runs[-1][0] += item_text(item)
            else:
                runs.append([item_text(item), *key])
        url = content.get("url") or (content.get("external") or {}).get("url")
        out.append([kind, runs, url, canonical(content.get("children") or [])])
    return out


def body_hash(subject: str, text: str, blocks: list[dict[str, Any]]) -> str:
    """The Seeded Hash: what the seed wrote, so a later run sees whether a marketer changed it."""
    payload = json.dumps([subject, text, canonical(blocks)], ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]

"""A Notion page body (its blocks) as an email: Jinja template text for the HTML part and the
plain-text part, rendered afterwards by render.py like any HTML Body (sandbox, StrictUndefined,
autoescape), so `{{ first_name }}` typed in the page works and stays escaped.

Blocks come in Notion's shape (as `GET /v1/blocks/{id}/children` answers them, a block's children
under `block[type]["children"]`, or as they are written). The HTML is a 600 px table layout with
inline styles only, which Gmail, Outlook and Apple Mail all display.

Links: a fixed URL the marketer wrote, or a variable. Notion only accepts http(s) URLs as links,
so a variable is written as `https://variable.invalid/<name>` (`.invalid` can never be a real
address); `{{ name }}` as the whole URL works too. Either becomes `href="{{ name }}"` and the link
guard (link_guard.py) then allows only campaign variables, unsubscribe_url and declared url fields.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from notion_queue.errors import RenderError
from notion_queue.models import Template

VARIABLE_LINK_PREFIX = "https://variable.invalid/"
SUPPORTED = frozenset(
    {
        "paragraph",
        "heading_1",
        "heading_2",
        "heading_3",
        "bulleted_list_item",
        "numbered_list_item",
        "quote",
        "callout",
        "divider",
        "image",
        "bookmark",
    }
)
LISTS = {"bulleted_list_item": "ul", "numbered_list_item": "ol"}
_JINJA = re.compile(r"(\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\})", re.DOTALL)
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STATEMENTS = re.compile(r"\s*(\{%.*?%\}\s*)+", re.DOTALL)
COLOURS = {
    "gray": "#6b7280",
    "brown": "#92400e",
    "orange": "#c2410c",
    "yellow": "#a16207",
    "green": "#15803d",
    "blue": "#1d4ed8",
    "purple": "#7e22ce",
    "pink": "#be185d",
    "red": "#b91c1c",
}
BACKGROUNDS = {
    "gray": "#f3f4f6",
    "brown": "#f5ebe0",
    "orange": "#ffedd5",
    "yellow": "#fef9c3",
    "green": "#dcfce7",
    "blue": "#dbeafe",
    "purple": "#f3e8ff",
    "pink": "#fce7f3",
    "red": "#fee2e2",
}
FONT = "font-family:Arial,Helvetica,sans-serif"
P = "margin:0 0 16px"
HEADINGS = {
    "heading_1": ("h1", "margin:0 0 16px;font-size:28px;line-height:1.25;color:#111827"),
    "heading_2": ("h2", "margin:24px 0 12px;font-size:22px;line-height:1.3;color:#111827"),
    "heading_3": ("h3", "margin:20px 0 8px;font-size:18px;line-height:1.35;color:#111827"),
}
LINK_STYLE = "color:#2563eb;text-decoration:underline"
BUTTON_CELL = "border-radius:6px;background:#1f2937"
BUTTON_LINK = (
    "display:inline-block;padding:12px 20px;color:#ffffff;text-decoration:none;"
    "font-weight:bold;border-radius:6px"
)
PAGE_OPEN = (
    '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
    'style="background:#f4f4f5"><tr><td align="center" style="padding:24px 12px">\n'
    '<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0" '
    'style="width:100%;max-width:600px;background:#ffffff;border-radius:8px"><tr>'
    f'<td style="padding:32px;{FONT};font-size:16px;line-height:1.6;color:#1f2937">\n'
)
PAGE_CLOSE = "</td></tr></table>\n</td></tr></table>"


def render_blocks(blocks: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """(HTML template text, plain-text template text) for a page body. Raises RenderError naming
    every block type an email cannot show: nothing is dropped without a word."""
    unknown = unsupported_types(blocks)
    if unknown:
        names = ", ".join(f"'{name}'" for name in unknown)
        what = f"block type {names} is" if len(unknown) == 1 else f"block types {names} are"
        raise RenderError(
            f"{what} not supported in emails; change the template's page in the Templates "
            "database (or set its HTML Body)"
        )
    body = "".join(_html_blocks(blocks))
    text = "\n".join(_text_blocks(blocks, 0))
    return PAGE_OPEN + body + PAGE_CLOSE + "\n", re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def with_page_body(template: Template) -> Template:
    """The template as render.py takes it: a page body becomes the HTML Body (and the Text Body,
    unless one is set) when the HTML Body is empty; an HTML Body that is set wins."""
    if template.html.strip() or not template.blocks:
        return template
    try:
        blocks = json.loads(template.blocks)
    except json.JSONDecodeError:
        raise RenderError(
            f"template {template.template_id!r} has an unreadable page body"
        ) from None
    html_text, plain = render_blocks(blocks if isinstance(blocks, list) else [])
    return replace(template, html=html_text, text=template.text if template.text.strip() else plain)


def unsupported_types(blocks: Iterable[dict[str, Any]]) -> list[str]:
    """Every block type (nested ones too) the renderer cannot show, sorted, once each."""
    found: set[str] = set()
    for block in blocks:
        kind = str(block.get("type", "unknown"))
        if kind not in SUPPORTED:
            found.add(kind)  # its own parts (a table's rows) are not named again
            continue
        if kind == "image" and _image_url(block) is None:
            found.add("image (uploaded to Notion: use an external image URL)")
        found.update(unsupported_types(_children(block)))
    return sorted(found)


def _children(block: dict[str, Any]) -> list[dict[str, Any]]:
    content = block.get(str(block.get("type")))
    children = content.get("children") if isinstance(content, dict) else None
    return list(children) if isinstance(children, list) else []


def _rich(block: dict[str, Any], key: str = "rich_text") -> list[dict[str, Any]]:
    content = block.get(str(block.get("type")))
    items = content.get(key) if isinstance(content, dict) else None
    return list(items) if isinstance(items, list) else []


# ---------------------------------------------------------------- rich text


def item_text(item: dict[str, Any]) -> str:
    """The text of a rich-text item, read (plain_text) or written (text.content) form."""
    if isinstance(item.get("plain_text"), str):
        return str(item["plain_text"])
    text = item.get("text")
    if isinstance(text, dict):
        return str(text.get("content", ""))
    equation = item.get("equation")
    return str(equation.get("expression", "")) if isinstance(equation, dict) else ""


def item_link(item: dict[str, Any]) -> str | None:
    if isinstance(item.get("href"), str) and item["href"]:
        return str(item["href"])
    text = item.get("text")
    link = text.get("link") if isinstance(text, dict) else None
    url = link.get("url") if isinstance(link, dict) else None
    return str(url) if url else None


def link_target(url: str) -> str:
    """A link URL as template text: a variable becomes `{{ name }}`, a fixed URL stays itself."""
    if url.startswith(VARIABLE_LINK_PREFIX):
        name = url.removeprefix(VARIABLE_LINK_PREFIX).strip("/")
        if _NAME.fullmatch(name):
            return f"{{{{ {name} }}}}"
    match = _VARIABLE.fullmatch(url.strip())
    if match:
        return f"{{{{ {match.group(1)} }}}}"
    return url


def _escape_text(text: str) -> str:
    """HTML-escape the text around Jinja tags; the tags stay Jinja (autoescape covers values)."""
    parts = _JINJA.split(text)
    return "".join(
        part if i % 2 else html.escape(part, quote=False) for i, part in enumerate(parts)
    )


def _attribute(url: str) -> str:
    target = link_target(url)
    if target != url:
        return target
    return "".join(
        part if i % 2 else html.escape(part, quote=True) for i, part in enumerate(_JINJA.split(url))
    )


def _html_rich(items: Sequence[dict[str, Any]]) -> str:
    out = []
    for item in items:
        piece = _escape_text(item_text(item)).replace("\n", "<br>")
        notes = item.get("annotations") if isinstance(item.get("annotations"), dict) else {}
        assert isinstance(notes, dict)
        if notes.get("code"):
            piece = (
                '<code style="font-family:Menlo,Consolas,monospace;font-size:14px;'
                f'background:#f3f4f6;padding:1px 4px;border-radius:3px">{piece}</code>'
            )
        for flag, tag in (("bold", "strong"), ("italic", "em"), ("underline", "u")):
            if notes.get(flag):
                piece = f"<{tag}>{piece}</{tag}>"
        if notes.get("strikethrough"):
            piece = f"<s>{piece}</s>"
        style = _colour_style(str(notes.get("color", "default")))
        if style:
            piece = f'<span style="{style}">{piece}</span>'
        url = item_link(item)
        if url:
            piece = f'<a href="{_attribute(url)}" style="{LINK_STYLE}">{piece}</a>'
        out.append(piece)
    return "".join(out)


def _colour_style(colour: str) -> str:
    if colour.endswith("_background"):
        background = BACKGROUNDS.get(colour.removesuffix("_background"))
        return f"background-color:{background}" if background else ""
    text = COLOURS.get(colour)
    return f"color:{text}" if text else ""


def _text_rich(items: Sequence[dict[str, Any]]) -> str:
    out = []
    for item in items:
        text = item_text(item)
        url = item_link(item)
        out.append(f"{text} ({link_target(url)})" if url and text.strip() else text)
    return "".join(out)


def control_tags(block: dict[str, Any]) -> str | None:
    """A paragraph holding only Jinja statements (`{% if meeting_url is defined %}`, `{% else %}`,
    `{% endif %}`) is no paragraph: its tags stand alone, so a condition can span blocks."""
    if block.get("type") != "paragraph":
        return None
    text = "".join(item_text(item) for item in _rich(block))
    return text.strip() if _STATEMENTS.fullmatch(text) else None


def button_link(block: dict[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """The rule for buttons: a paragraph or callout whose whole text is one link (and that has
    no nested blocks) is a button. Answers (url, the link's text items)."""
    if block.get("type") not in ("paragraph", "callout") or _children(block):
        return None
    items = [item for item in _rich(block) if item_text(item).strip()]
    urls = {item_link(item) for item in items}
    if not items or len(urls) != 1 or None in urls:
        return None
    url = urls.pop()
    assert url is not None
    return url, items


# ---------------------------------------------------------------- HTML


def _html_blocks(blocks: Sequence[dict[str, Any]]) -> Iterable[str]:
    index = 0
    while index < len(blocks):
        block = blocks[index]
        kind = str(block.get("type"))
        if kind in LISTS:
            run = []
            while index < len(blocks) and blocks[index].get("type") == kind:
                run.append(blocks[index])
                index += 1
            yield _html_list(kind, run)
            continue
        yield _html_block(block)
        index += 1


def _html_list(kind: str, items: Sequence[dict[str, Any]]) -> str:
    tag = LISTS[kind]
    lis = "".join(
        f'<li style="margin:0 0 8px">{_html_rich(_rich(item))}'
        + "".join(_html_blocks(_children(item)))
        + "</li>"
        for item in items
    )
    return f'<{tag} style="margin:0 0 16px;padding-left:24px">{lis}</{tag}>\n'


def _html_block(block: dict[str, Any]) -> str:
    kind = str(block.get("type"))
    children = "".join(_html_blocks(_children(block)))
    statement = control_tags(block)
    if statement is not None:
        return statement + "\n" + children
    button = button_link(block)
    if button is not None:
        url, items = button
        label = _html_rich([{**i, "href": None, "text": {"content": item_text(i)}} for i in items])
        return (
            '<table role="presentation" cellpadding="0" cellspacing="0" border="0" '
            f'style="margin:8px 0 24px"><tr><td style="{BUTTON_CELL}">'
            f'<a href="{_attribute(url)}" style="{BUTTON_LINK}">{label}</a></td></tr></table>\n'
        )
    if kind == "paragraph":
        inner = _html_rich(_rich(block)) or "&nbsp;"
        nested = f'<div style="padding-left:24px">{children}</div>' if children else ""
        return f'<p style="{P}">{inner}</p>\n{nested}'
    if kind in HEADINGS:
        tag, style = HEADINGS[kind]
        return f'<{tag} style="{style}">{_html_rich(_rich(block))}</{tag}>\n{children}'
    if kind == "quote":
        return (
            f'<blockquote style="{P};padding:0 0 0 16px;border-left:4px solid #d1d5db;'
            f'color:#4b5563">{_html_rich(_rich(block))}{children}</blockquote>\n'
        )
    if kind == "callout":
        icon = _callout_icon(block)
        return (
            '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
            f'style="{P}"><tr><td style="padding:16px;background:#f3f4f6;border-radius:6px">'
            f"{icon}{_html_rich(_rich(block))}{children}</td></tr></table>\n"
        )
    if kind == "divider":
        return '<hr style="border:none;border-top:1px solid #e5e7eb;margin:24px 0">\n'
    if kind == "image":
        url = _image_url(block) or ""
        alt = html.escape(_text_rich(_rich(block, "caption")), quote=True)
        return (
            f'<img src="{_attribute(url)}" alt="{alt}" width="536" '
            f'style="display:block;width:100%;max-width:536px;height:auto;border:0;{P}">\n'
        )
    # bookmark
    url = _bookmark_url(block)
    label = _html_rich(_rich(block, "caption")) or _escape_text(link_target(url))
    return f'<p style="{P}"><a href="{_attribute(url)}" style="{LINK_STYLE}">{label}</a></p>\n'


def _callout_icon(block: dict[str, Any]) -> str:
    content = block.get("callout")
    icon = content.get("icon") if isinstance(content, dict) else None
    emoji = icon.get("emoji") if isinstance(icon, dict) else None
    return f"{html.escape(str(emoji))} " if emoji else ""


def _image_url(block: dict[str, Any]) -> str | None:
    image = block.get("image")
    external = image.get("external") if isinstance(image, dict) else None
    url = external.get("url") if isinstance(external, dict) else None
    return str(url) if url else None


def _bookmark_url(block: dict[str, Any]) -> str:
    content = block.get("bookmark")
    return str(content.get("url", "")) if isinstance(content, dict) else ""


# ---------------------------------------------------------------- plain text


def _text_blocks(blocks: Sequence[dict[str, Any]], depth: int) -> Iterable[str]:
    indent = "  " * depth
    number = 0
    for block in blocks:
        kind = str(block.get("type"))
        number = number + 1 if kind == "numbered_list_item" else 0
        line = _text_rich(_rich(block))
        nested = list(_text_blocks(_children(block), depth + (kind in LISTS)))
        statement = control_tags(block)
        if statement is not None:  # the blank lines before a tag go with it: no gap is left
            yield re.sub(r"\{%(?![-+])", "{%-", statement)
            yield from nested
            continue
        if kind in LISTS:
            marker = f"{number}. " if kind == "numbered_list_item" else "- "
            yield indent + marker + line.replace("\n", "\n" + indent + "  ")
            yield from nested
            continue
        if kind == "divider":
            yield "\n---\n"
        elif kind == "image":
            caption = _text_rich(_rich(block, "caption"))
            if caption:
                yield f"\n{caption}\n"
        elif kind == "bookmark":
            url = link_target(_bookmark_url(block))
            caption = _text_rich(_rich(block, "caption"))
            yield f"\n{caption} ({url})\n" if caption else f"\n{url}\n"
        elif kind == "quote":
            yield "\n" + "\n".join("> " + part for part in line.split("\n")) + "\n"
        else:
            emoji = kind == "callout" and button_link(block) is None
            yield f"\n{html.unescape(_callout_icon(block)) if emoji else ''}{line}\n"
        yield from nested
        if nested and depth == 0:
            yield ""

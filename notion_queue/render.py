"""Render a template into a message, safely: marketers edit templates in Notion.

Jinja2's sandbox keeps a template from reaching Python internals; StrictUndefined turns a
variable with no value into an error (the row fails) instead of an email that says
"Hi {{first_name}}"; autoescape HTML-escapes every value in the HTML part.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from notion_queue.errors import RenderError
from notion_queue.models import Template

_html_env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=True)
_text_env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")
_UNDEFINED_ATTR = re.compile(r"has no attribute '([^']+)'")

# Compiled templates by (environment, source text): the source is the template's version, so an
# edit compiles afresh and an unchanged template is compiled once (compiling costs ~100x a render).
_COMPILED_LIMIT = 512
_compiled: OrderedDict[tuple[int, str], jinja2.Template] = OrderedDict()
_compiled_lock = threading.Lock()  # the worker renders from several threads


def _compile(env: SandboxedEnvironment, source: str) -> jinja2.Template:
    key = (id(env), source)
    with _compiled_lock:
        found = _compiled.get(key)
        if found is not None:
            _compiled.move_to_end(key)
            return found
    compiled = env.from_string(source)  # a syntax error is raised, and not remembered
    with _compiled_lock:
        _compiled[key] = compiled
        while len(_compiled) > _COMPILED_LIMIT:
            _compiled.popitem(last=False)  # the least recently used: old versions age out
    return compiled


def clear_compiled() -> None:
    with _compiled_lock:
        _compiled.clear()


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


def render(template: Template, variables: dict[str, Any]) -> RenderedEmail:
    subject = one_line(_render(_text_env, template, "Subject", template.subject, variables))
    if not subject:
        raise RenderError(f"template {template.template_id!r} renders an empty subject")
    html = _render(_html_env, template, "HTML Body", template.html, variables)
    if template.text.strip():
        text = _render(_text_env, template, "Text Body", template.text, variables)
    else:
        text = html_to_text(html)
    if not html.strip() and not text.strip():
        raise RenderError(f"template {template.template_id!r} renders an empty body")
    return RenderedEmail(subject=subject, html=html.strip() + "\n", text=text.strip() + "\n")


def _render(
    env: SandboxedEnvironment, template: Template, part: str, source: str, variables: dict[str, Any]
) -> str:
    try:
        return _compile(env, source).render(variables)
    except jinja2.UndefinedError as exc:
        message = str(exc)
        match = _UNDEFINED_NAME.search(message) or _UNDEFINED_ATTR.search(message)
        name = match.group(1) if match else message
        raise RenderError(f"missing template variable: {name}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(
            f"template {template.template_id!r} {part} has a syntax error on line {exc.lineno}: "
            f"{exc.message}; fix the template in the Templates database"
        ) from None
    except jinja2.TemplateError as exc:
        raise RenderError(f"template {template.template_id!r} {part}: {exc}") from None


def one_line(value: str) -> str:
    """Header-safe text: CR, LF and other control characters never reach a header."""
    if not value.isprintable():  # the common case skips the walk: its only whitespace is " "
        value = "".join(ch if ch.isprintable() else " " for ch in value)
    return " ".join(value.split())


class _TextExtractor(HTMLParser):
    _BREAKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "ul", "ol"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._href: str | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        if tag in self._BREAKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        if tag == "a" and self._href:
            self.parts.append(f" ({self._href})")
            self._href = None
        if tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        text = " ".join(data.split())
        if text and data[:1].isspace():
            text = " " + text
        if text and data[-1:].isspace():
            text += " "
        self.parts.append(text or " ")


def html_to_text(html: str) -> str:
    """A readable plain-text part for a template that has none."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.parts).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()

"""No event value becomes a link: which template variables may be a link target (href, src).

Only the business's own values may: campaign variables (`[variables]`), `unsubscribe_url`
(the worker's) and url fields the catalog declares (checked against their host allow-list at
intake and again at send). The HTML part may not turn escaping off either (`| safe`,
`{% autoescape false %}`), which would let a value bring its own `<a href>`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Mapping

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from notion_queue.errors import ConfigError, RenderError
from notion_queue.models import Template

ALWAYS_ALLOWED = frozenset({"unsubscribe_url"})
_ENV = SandboxedEnvironment()
# A link attribute and its value; a quoted value may hold Jinja tags that contain quotes.
_LINK_ATTRIBUTE = re.compile(
    r"""\b(href|src|srcset|action|formaction|background|poster)\s*=\s*"""
    r"""(?:"((?:\{\{.*?\}\}|\{%.*?%\}|[^"])*)"|'((?:\{\{.*?\}\}|\{%.*?%\}|[^'])*)'|([^\s>]+))""",
    re.IGNORECASE | re.DOTALL,
)


def link_variables(html: str) -> list[tuple[str, str]]:
    """(attribute, variable) for each template variable used in a link attribute. A value the
    check cannot read is reported as variable "?"."""
    found: list[tuple[str, str]] = []
    for match in _LINK_ATTRIBUTE.finditer(html):
        attribute = match.group(1).lower()
        value = next(v for v in match.group(2, 3, 4) if v is not None)
        if "{" not in value:
            continue
        try:
            names = meta.find_undeclared_variables(_ENV.parse(value))
        except jinja2.TemplateSyntaxError:
            found.append((attribute, "?"))
            continue
        found.extend((attribute, name) for name in sorted(names))
    return found


def link_problems(template: Template, allowed: Collection[str]) -> list[str]:
    """Why this template could put an event's value in a link; empty when it cannot."""
    problems = []
    for attribute, name in link_variables(template.html):
        if name == "?":
            problems.append(
                f"template {template.template_id!r} has a {attribute} whose target this check "
                "cannot read; write it as {{ variable }}"
            )
        elif name not in allowed and name not in ALWAYS_ALLOWED:
            problems.append(
                f"template {template.template_id!r} puts {{{{ {name} }}}} in a {attribute}: only "
                "campaign variables, unsubscribe_url and url fields declared in the catalog may "
                "be link targets"
            )
    try:
        tree = _ENV.parse(template.html)
    except jinja2.TemplateSyntaxError:
        return problems  # rendering reports the syntax error itself
    if any(f.name == "safe" for f in tree.find_all(nodes.Filter)) or any(
        True for _ in tree.find_all(nodes.EvalContextModifier)
    ):
        problems.append(
            f"template {template.template_id!r} turns HTML escaping off (| safe or autoescape); "
            "a value could then bring its own link"
        )
    return problems


def link_targets(campaign_variables: Iterable[str], url_fields: Iterable[str]) -> frozenset[str]:
    """The variables a template may use as a link target."""
    return frozenset(campaign_variables) | frozenset(url_fields) | ALWAYS_ALLOWED


def check_links(template: Template, allowed: Collection[str]) -> None:
    """At send time: a template edited to link an event value fails its row, with the fix."""
    problems = _link_problems_once(template, frozenset(allowed))
    if problems:
        raise RenderError(f"{problems[0]}; fix the template in the Templates database")


@functools.lru_cache(maxsize=256)
def _link_problems_once(template: Template, allowed: frozenset[str]) -> list[str]:
    """link_problems, parsed once per template version (the worker checks every row's)."""
    return link_problems(template, allowed)


def check_template_links(
    templates: Mapping[str, Template], used: Iterable[str], allowed: Collection[str]
) -> None:
    """At start-up: a packaged template the catalog uses may not link an event value."""
    for template_id in used:
        template = templates.get(template_id)
        if template is None:
            continue
        problems = link_problems(template, allowed)
        if problems:
            raise ConfigError(problems[0])

"""Which variables a sequence's templates cannot do without, so intake refuses an event (422
naming the field) or `notion-queue enqueue` a missing --var, instead of accepting rows that
would all fail at send time.

A template needs a name it renders (Jinja's find_undeclared_variables) unless the template
itself guards it: `x | default(...)` or `x is defined` anywhere in it. Campaign variables, the
names the worker sets (email, unsubscribe_url, timezone) and declared fields with a fallback are
never missing. What a marketer's later edit breaks (a template or a row's Variables) still
fails the row at send time, with what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from notion_queue.event_fields import RESERVED
from notion_queue.intake.plans import Plan
from notion_queue.models import Template
from notion_queue.sequences import Catalog
from notion_queue.timezones import ZONE_VARIABLE

_env = SandboxedEnvironment()
_GUARD_FILTERS = frozenset({"default", "d"})
_GUARD_TESTS = frozenset({"defined", "undefined"})


def template_needs(template: Template) -> frozenset[str]:
    """The names this template renders without a guard. A body that does not parse needs
    nothing here: the worker reports the syntax error on the row, with the line."""
    needed: set[str] = set()
    guarded: set[str] = set()
    for source in (template.subject, template.html, template.text):
        try:
            tree = _env.parse(source)
        except jinja2.TemplateSyntaxError:
            continue
        needed |= meta.find_undeclared_variables(tree)
        for node in tree.find_all((nodes.Filter, nodes.Test)):
            name = getattr(node, "name", "")
            subject = getattr(node, "node", None)
            is_guard = name in (_GUARD_FILTERS if isinstance(node, nodes.Filter) else _GUARD_TESTS)
            if is_guard and isinstance(subject, nodes.Name):
                guarded.add(subject.name)
    return frozenset(needed - guarded)


@dataclass(frozen=True)
class NeededVariables:
    """Per sequence: each variable an event must bring, and a template that needs it."""

    by_sequence: Mapping[str, Mapping[str, str]]

    @classmethod
    def of(cls, catalog: Catalog, templates: Mapping[str, Template]) -> NeededVariables:
        always = set(catalog.variables) | set(RESERVED) | {ZONE_VARIABLE}
        always |= {name for name, spec in catalog.fields.items() if spec.fallback is not None}
        by_sequence: dict[str, dict[str, str]] = {}
        for sequence in catalog.sequences.values():
            needs: dict[str, str] = {}
            for step in sequence.steps:
                template = templates.get(step.template_id)
                if step.sent_by_website or template is None:
                    continue
                for name in sorted(template_needs(template) - always):
                    needs.setdefault(name, step.template_id)
            by_sequence[sequence.name] = needs
        return cls(by_sequence)

    def missing(self, sequence: str, variables: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(variable, a template that needs it) for each needed variable with no value."""
        needs = self.by_sequence.get(sequence, {})
        return [
            (name, template)
            for name, template in needs.items()
            if variables.get(name) in (None, "")
        ]


def missing_variable(needed: NeededVariables, plan: Plan) -> str | None:
    """Why intake refuses the event (a 422 naming the field), or None when every sequence it
    starts has what its templates need."""
    for start in plan.starts:
        variables = {**start.variables, "first_name": start.first_name}
        missing = needed.missing(start.sequence, variables)
        if missing:
            return missing_message(start.sequence, missing)
    return None


def missing_message(sequence: str, missing: Iterable[tuple[str, str]]) -> str:
    name, template = next(iter(missing))
    return (
        f"{name}: is required (template {template} of {sequence} uses it, and the catalog "
        "gives it no fallback)"
    )

"""Render every template of every sequence with the seeds' sample payloads, as the worker
would, and report each one that would fail, or that could link to an event's value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from notion_queue.errors import NotionQueueError, TemplateNotFound
from notion_queue.event_fields import url_field_names, with_fallbacks
from notion_queue.intake.payloads import WebsiteLead
from notion_queue.intake.plans import event_variables
from notion_queue.intake.website import lead_fields, lead_variables
from notion_queue.link_guard import link_problems, link_targets
from notion_queue.models import Template
from notion_queue.render import RenderedEmail, render
from notion_queue.samples import PRECALL, WEBSITE_SAMPLES
from notion_queue.sequences import Catalog


@dataclass(frozen=True)
class CheckResult:
    template_id: str
    sequence: str
    rendered: RenderedEmail | None
    problem: str | None


def sample_variables(sequence: str, catalog: Catalog) -> dict[str, Any]:
    """What the worker would render a sample event's row with (campaign variables last)."""
    if sequence in WEBSITE_SAMPLES:
        lead = WebsiteLead.model_validate(WEBSITE_SAMPLES[sequence])
        variables = lead_variables(lead_fields(lead, catalog).values, catalog.tips)
        email = lead.email
    else:
        variables = {k: v for k, v in PRECALL.items() if k != "email"}
        email = PRECALL["email"]
    return {
        **with_fallbacks(event_variables(variables, catalog), catalog.fields),
        **catalog.variables,
        "email": email,
        "unsubscribe_url": "https://example.com/unsubscribe?token=sample",
    }


def check_templates(catalog: Catalog, lookup: dict[str, Template] | Any) -> list[CheckResult]:
    """`lookup` maps Template ID → Template (the packaged files, or a TemplateSource-like get)."""
    results = []
    allowed = link_targets(catalog.variables, url_field_names(catalog.fields))
    for sequence in catalog.sequences.values():
        variables = sample_variables(sequence.name, catalog)
        for step in sequence.steps:
            try:
                template = (
                    lookup[step.template_id]
                    if isinstance(lookup, dict)
                    else lookup.get(step.template_id)
                )
                problems = link_problems(template, allowed)
                if problems:
                    results.append(CheckResult(step.template_id, sequence.name, None, problems[0]))
                    continue
                rendered = render(template, variables)
            except (KeyError, TemplateNotFound):
                results.append(
                    CheckResult(step.template_id, sequence.name, None, "no such template")
                )
                continue
            except NotionQueueError as exc:
                results.append(CheckResult(step.template_id, sequence.name, None, str(exc)))
                continue
            results.append(CheckResult(step.template_id, sequence.name, rendered, None))
    return results

"""A template rendered with the seeds' sample values, as the worker would send it: the preview
page and the test send both make a sample row and hand it to `Composer.compose` with the
template `TemplateSource` gives, so they show exactly what a lead would get.

The sample values are the example payload of the template's sequence (`samples.py`). Overrides
(the preview's query parameters) are event values: they go through the intake's own checks (the
catalog's declared field types; a url only from its allowed hosts; an undeclared name is
ignored), so an override can never become a link target a real event could not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from notion_queue.compose import Composer
from notion_queue.event_fields import take_fields
from notion_queue.intake.payloads import WebsiteLead, normalise_email
from notion_queue.intake.plans import event_variables
from notion_queue.intake.website import lead_fields, lead_variables
from notion_queue.mail.base import OutgoingEmail
from notion_queue.models import QueueRow
from notion_queue.samples import PRECALL, WEBSITE_SAMPLES
from notion_queue.sequences import Catalog
from notion_queue.templates import TemplateSource

MAX_OVERRIDES = 30
MAX_OVERRIDE_LENGTH = 2000


@dataclass(frozen=True)
class Sample:
    row: QueueRow
    ignored: tuple[str, ...]  # override names the catalog does not declare


def _place(template_id: str, catalog: Catalog) -> tuple[str, int | None]:
    """The sequence and step number that send this template (the first that does)."""
    for sequence in catalog.sequences.values():
        for step in sequence.steps:
            if step.template_id == template_id:
                return sequence.name, step.number
    return "", None


def sample_row(
    template_id: str,
    catalog: Catalog,
    now: datetime,
    *,
    overrides: Mapping[str, str] | None = None,
    to: str | None = None,
    row_id: str = "preview",
) -> Sample:
    """The row an event of the template's sequence would have made, with `overrides` applied.
    Raises ValueError (naming the field, never echoing its value) when an override does not fit
    its declared type."""
    overrides = dict(overrides or {})
    if len(overrides) > MAX_OVERRIDES:
        raise ValueError(f"at most {MAX_OVERRIDES} sample values can be overridden")
    for name, value in overrides.items():
        if len(name) > 100 or len(value) > MAX_OVERRIDE_LENGTH:
            raise ValueError(f"{name[:100]}: longer than {MAX_OVERRIDE_LENGTH} characters")
    sequence, number = _place(template_id, catalog)
    if sequence in WEBSITE_SAMPLES or not sequence:  # no sequence sends it: a signup's values
        payload: dict[str, Any] = dict(
            WEBSITE_SAMPLES.get(sequence, WEBSITE_SAMPLES["lead_nurture"])
        )
        ignored = [name for name in overrides if name not in catalog.fields and name != "email"]
        payload.update({k: v for k, v in overrides.items() if k not in ignored})
        lead = WebsiteLead.model_validate(payload)
        variables = event_variables(
            lead_variables(lead_fields(lead, catalog).values, catalog.tips), catalog
        )
        email = lead.email
    else:  # a booking's values (precall_prep, or a sequence of a SEQUENCES_FILE)
        taken = take_fields({k: v for k, v in overrides.items() if k != "email"}, catalog.fields)
        ignored = list(taken.ignored)
        base = {k: v for k, v in PRECALL.items() if k != "email"}
        variables = event_variables({**base, **taken.values}, catalog)
        email = normalise_email(overrides.get("email", PRECALL["email"]))
    row = QueueRow(
        id=row_id,
        email=normalise_email(to) if to else email,
        first_name=str(variables.get("first_name", "")),
        sequence=sequence,
        email_number=number,
        template_id=template_id,
        scheduled_time=now,
        status_text="queued",
        dedupe_key="",
        variables_text=json.dumps(variables, sort_keys=True, default=str),
    )
    return Sample(row, tuple(ignored))


def compose_sample(composer: Composer, templates: TemplateSource, sample: Sample) -> OutgoingEmail:
    """The email, exactly as the worker would compose it (RenderError when it cannot)."""
    return composer.compose(sample.row, templates.get(sample.row.template_id))

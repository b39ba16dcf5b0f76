"""A website trigger's event (`POST /webhook/<name>`): the lead's declared fields, the contact,
the variables the seed templates use, and the Plan the catalog's trigger makes of them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from notion_queue.event_fields import TakenFields, take_fields
from notion_queue.intake.exit_rules import EventTimes, anchors_for, run_trigger
from notion_queue.intake.payloads import WebsiteLead, first_name_from
from notion_queue.intake.plans import Plan, event_variables
from notion_queue.models import ContactData, utc_text
from notion_queue.sequences import Catalog
from notion_queue.triggers import Trigger

ASSESSMENT_FIELDS = (
    "assessment_score",
    "overall_score",
    "red_systems",
    "orange_systems",
    "yellow_systems",
    "green_systems",
    "gps_score",
    "money_score",
    "weakest_system_1",
    "weakest_system_2",
    "strongest_system",
    "revenue_leak_total",
)

# What the website's payload model reads itself: neither template variables nor ignored.
LEAD_HANDLED = ("email", "name", "last_name", "email_1_sent_at")


def lead_fields(lead: WebsiteLead, catalog: Catalog) -> TakenFields:
    """The lead's declared fields, typed (ValueError naming a field that does not fit)."""
    data = lead.model_dump()
    data["first_name"] = first_name_from(lead.first_name, lead.name)
    return take_fields(data, catalog.fields, handled=LEAD_HANDLED)


def _lead_contact(lead: WebsiteLead, values: dict[str, Any], kind: str) -> ContactData:
    assessment = {k: values[k] for k in ASSESSMENT_FIELDS if k in values}
    score = values.get("assessment_score", values.get("overall_score"))
    return ContactData(
        email=lead.email,
        first_name=values.get("first_name"),
        last_name=lead.last_name,
        business_name=values.get("business_name"),
        assessment_score=float(score) if isinstance(score, int | float) else None,
        assessment_data=assessment or None,
        segment=_segment(values),
        last_event=kind,
        time_zone=values.get("timezone"),  # a declared timezone field, checked by take_fields
    )


def _segment(fields: dict[str, Any]) -> str | None:
    """The seeds' segments: CRITICAL (2+ red systems), URGENT (any red or orange), OPTIMIZE."""
    red, orange = fields.get("red_systems"), fields.get("orange_systems")
    if not isinstance(red, int) and not isinstance(orange, int):
        return None
    if isinstance(red, int) and red >= 2:
        return "CRITICAL"
    if (isinstance(red, int) and red >= 1) or (isinstance(orange, int) and orange >= 1):
        return "URGENT"
    return "OPTIMIZE"


def lead_variables(values: dict[str, Any], tips: Mapping[str, str]) -> dict[str, Any]:
    """Declared, validated fields plus the derived names the seed templates use; the tip for
    the weakest system is the catalog's `[tips]` copy."""
    variables = dict(values)
    weakest = variables.get("weakest_system_1")
    if isinstance(weakest, str) and weakest:
        variables.setdefault("WeakestSystem1", weakest)
        tip = tips.get(weakest.upper())
        if tip:
            variables.setdefault("personalized_tip_1", tip)
    leak = variables.get("revenue_leak_total")
    if isinstance(leak, int | float):
        variables.setdefault("TotalRevenueLeak_K", f"{leak / 1000:.1f}".rstrip("0").rstrip("."))
    if isinstance(variables.get("assessment_score"), int | float):
        variables.setdefault("overall_score", variables["assessment_score"])
    # Times stay ISO 8601 in the row: the worker tells them in the recipient's zone.
    if "scheduled_time" in variables:
        variables.setdefault("diagnostic_call_date", variables["scheduled_time"])
    return variables


def plan_website(
    trigger: Trigger, lead: WebsiteLead, received_at: datetime, catalog: Catalog
) -> Plan:
    """What the catalog's trigger does with a website event. Its kind is the trigger's name."""
    times = EventTimes(received_at, email_1_sent_at=lead.extras().get("email_1_sent_at"))
    anchors = anchors_for(trigger, catalog, times)  # a wrong time is refused before the fields
    taken = lead_fields(lead, catalog)
    variables = event_variables(lead_variables(taken.values, catalog.tips), catalog)
    starts, cancels = run_trigger(
        trigger,
        catalog,
        times,
        anchors,
        first_name=str(variables.get("first_name", "")),
        variables=variables,
        reason=f"{trigger.name} received {utc_text(received_at)}",
    )
    return Plan(
        email=lead.email,
        contact=_lead_contact(lead, taken.values, trigger.name),
        starts=starts,
        cancels=cancels,
        ignored_fields=taken.ignored,
    )

"""The recipient's time zone: which one applies, and times told in it.

A zone is an IANA name (Europe/Berlin). It comes from the event (Cal.com's attendee timeZone,
Calendly's invitee timezone, a website's `timezone` field: an invalid name is refused), else
from the contact's Time Zone in Notion (a marketer typed it: an invalid one is ignored with a
warning), else DEFAULT_TIMEZONE. Intake writes the zone into the row's Variables (`timezone`),
so the worker tells every time in it without reading the contact again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notion_queue.intake.payloads import parse_time
from notion_queue.logs import get_logger

log = get_logger(__name__)

ZONE_VARIABLE = "timezone"  # the row variable holding the recipient's zone
UTC_ZONE = ZoneInfo("UTC")


def zone_named(name: object) -> ZoneInfo:
    """The zone of an IANA name; ValueError (quoting no value) when it is not one."""
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise ValueError("must be an IANA time zone name, e.g. Europe/Berlin")
    text = name.strip()
    if text.startswith(("/", ".")) or ".." in text or "\\" in text:
        raise ValueError("must be an IANA time zone name, e.g. Europe/Berlin")
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError("must be an IANA time zone name, e.g. Europe/Berlin") from None


def contact_zone(typed: str, email: str) -> ZoneInfo | None:
    """The zone a marketer typed on a contact, or None (with a warning) when it is not one."""
    if not typed.strip():
        return None
    try:
        return zone_named(typed)
    except ValueError:
        log.warning(
            "contact_time_zone_invalid",
            email=email,
            effect="ignored: its emails use the event's zone or DEFAULT_TIMEZONE; "
            "fix Time Zone on the contact (an IANA name, e.g. Europe/Berlin)",
        )
        return None


def row_zone(variables: Mapping[str, Any], default: ZoneInfo) -> ZoneInfo:
    """The zone a row's times are told in: the one intake wrote, else the default."""
    try:
        return zone_named(variables.get(ZONE_VARIABLE))
    except ValueError:
        return default


def abbreviation(when: datetime, zone: ZoneInfo) -> str:
    """The zone's abbreviation at that moment (CET, EST); zones without one give a number
    ("+09"), shown as it is, and UTC as UTC."""
    return when.astimezone(zone).tzname() or "UTC"


def local_time_text(when: datetime, zone: ZoneInfo) -> str:
    """'Tuesday 1 December, 20:50 CET': a time as the recipient reads it."""
    local = when.astimezone(zone)
    return f"{local:%A} {local.day} {local:%B}, {local:%H:%M} {abbreviation(when, zone)}"


def local_day(when: datetime, zone: ZoneInfo) -> str:
    """The recipient's calendar day of a moment, as YYYY-MM-DD."""
    return when.astimezone(zone).date().isoformat()


def localised(variables: Mapping[str, Any], names: Iterable[str], zone: ZoneInfo) -> dict[str, Any]:
    """The variables, each named time (an ISO 8601 text) told in the zone. A value that is not
    such a time (a row written before times were stored as ISO) is left as it is."""
    result = dict(variables)
    for name in names:
        value = result.get(name)
        if not isinstance(value, str):
            continue
        try:
            when = parse_time(value)
        except ValueError:
            continue
        result[name] = local_time_text(when, zone)
    return result


def iso_utc(when: datetime) -> str:
    """How a time is stored in a row's Variables, to be told in the recipient's zone later."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")

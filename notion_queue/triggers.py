"""Triggers: the catalog's `[triggers.<name>]` tables, what starts and ends sequences.

A website trigger is an endpoint, `POST /webhook/<name>`, whose name is also its events' kind
(their journal entries and Dedupe Keys start with it). Four names are reserved for the calendar
providers' events: Cal.com and Calendly parse their own payloads in code, and these entries say
what a booking, a cancellation, a no-show and a removed no-show start and cancel. They create
no endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from notion_queue.errors import ConfigError

BOOKING = "booking"
BOOKING_CANCELLED = "booking_cancelled"
NO_SHOW = "no_show"
NO_SHOW_REMOVED = "no_show_removed"
PROVIDER_TRIGGERS = (BOOKING, BOOKING_CANCELLED, NO_SHOW, NO_SHOW_REMOVED)
# Endpoints that are code (their payloads and signatures are the providers'): no trigger may
# take their names.
BUILT_IN_ENDPOINTS = ("calcom-booking", "calendly", "resend", "unsubscribe")
_SEGMENT = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")
_KEYS = ("starts", "cancels", "description")


@dataclass(frozen=True)
class Trigger:
    name: str
    starts: tuple[str, ...] = ()
    cancels: tuple[str, ...] = ()  # the trigger's own exit rules (besides its sequences')
    description: str = ""

    @property
    def is_website(self) -> bool:
        """An endpoint of its own; the reserved provider names have none."""
        return self.name not in PROVIDER_TRIGGERS


def parse_triggers(raw: object, where: str) -> dict[str, Trigger]:
    """The `[triggers.*]` tables, each checked on its own (names, keys, list shapes)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [triggers] must hold one table per trigger")
    return {name: _parse_trigger(name, body, where) for name, body in raw.items()}


def _parse_trigger(name: str, body: object, where: str) -> Trigger:
    place = f"{where}: trigger {name!r}"
    if name in BUILT_IN_ENDPOINTS:
        raise ConfigError(
            f"{place} has the name of a built-in endpoint (/webhook/{name}); rename it"
        )
    if not _SEGMENT.match(name):
        raise ConfigError(
            f"{place} is not a URL path segment: use lowercase letters, digits, - and _"
        )
    look_alike = name.replace("-", "_")
    if look_alike in PROVIDER_TRIGGERS and name != look_alike:
        raise ConfigError(
            f"{place} looks like the reserved trigger {look_alike!r} but would be a website "
            f"endpoint: write [triggers.{look_alike}] for the providers' events, or rename it"
        )
    if not isinstance(body, dict):
        raise ConfigError(f'{place}: must be a table, e.g. [triggers.{name}] starts = ["..."]')
    for key in body:
        if key not in _KEYS:
            raise ConfigError(
                f"{place}: {key!r} is not a trigger setting (they are: {', '.join(_KEYS)})"
            )
    return Trigger(
        name=name,
        starts=_names(body, "starts", place),
        cancels=_names(body, "cancels", place),
        description=str(body.get("description", "")),
    )


def _names(body: Mapping[str, Any], key: str, place: str) -> tuple[str, ...]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{place}: {key} must be a list of sequence names")
    for name in value:
        if value.count(name) > 1:
            raise ConfigError(f"{place}: {key} names {name!r} twice")
    return tuple(value)


def check_trigger_sequences(
    triggers: Mapping[str, Trigger], anchors: Mapping[str, str], where: str
) -> None:
    """Every sequence a trigger names exists, and the trigger knows the time it is anchored
    on: a meeting's start comes only with a booking, email_1_sent_at only with a website event.
    `anchors` maps each sequence of the catalog to its anchor."""
    for trigger in triggers.values():
        place = f"{where}: trigger {trigger.name!r}"
        for verb, names in (("starts", trigger.starts), ("cancels", trigger.cancels)):
            for name in names:
                if name not in anchors:
                    raise ConfigError(f"{place} {verb} unknown sequence {name!r}")
        for name in trigger.starts:
            anchor = anchors[name]
            if anchor == "meeting_start" and trigger.name != BOOKING:
                raise ConfigError(
                    f"{place} starts {name!r}, anchored on meeting_start, but only "
                    f"[triggers.{BOOKING}] knows a meeting's start"
                )
            if anchor == "email_1_sent_at" and not trigger.is_website:
                raise ConfigError(
                    f"{place} starts {name!r}, anchored on email_1_sent_at, which only a "
                    "website event carries"
                )

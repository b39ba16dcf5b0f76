"""The catalog: data (a TOML file), validated once at start-up. It is what runs.

A sequence is a list of steps, each a template sent at an offset from the sequence's anchor,
plus the sequences its start cancels (the exit rules). Triggers (notion_queue/triggers.py) say
which events start which sequences; `[tips]` and `[variables]` are campaign copy and values.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from notion_queue.errors import ConfigError
from notion_queue.event_fields import FieldSpec, parse_fields
from notion_queue.logs import get_logger
from notion_queue.triggers import Trigger, check_trigger_sequences, parse_triggers
from notion_queue.windows import Timing, Window, parse_timing

log = get_logger(__name__)

Anchor = Literal["event", "email_1_sent_at", "meeting_start"]
ANCHORS: tuple[Anchor, ...] = ("event", "email_1_sent_at", "meeting_start")
_OFFSET = re.compile(r"^\s*([+-]?\d+)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
REASON_TIMES = ("event_time", "anchor_time")  # what a cancel_reason may say
PACKAGED_CATALOG = "the packaged sequences.toml"
TABLES = ("variables", "fields", "sequences", "triggers", "tips")


def parse_offset(text: str) -> timedelta:
    match = _OFFSET.match(str(text))
    if not match:
        raise ValueError(f"offset {text!r} is not a number and a unit (s, m, h, d), e.g. '2d'")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class Step:
    number: int
    template_id: str
    offset: timedelta
    testing_offset: timedelta
    sent_by_website: bool = False

    def send_time(self, anchor: datetime, testing_mode: bool) -> datetime:
        return anchor + (self.testing_offset if testing_mode else self.offset)


@dataclass(frozen=True)
class Sequence:
    name: str
    anchor: Anchor
    steps: tuple[Step, ...]
    cancels: tuple[str, ...] = ()
    description: str = ""
    cancel_reason: str = ""  # with {event_time} and {anchor_time}; "" → the default
    timing: Timing = field(default_factory=Timing)  # window, review, cap_exempt (windows.py)

    @property
    def expires_at_anchor(self) -> bool:
        """Reminders before a meeting are worthless once it has started."""
        return self.anchor == "meeting_start"


@dataclass(frozen=True)
class Catalog:
    sequences: dict[str, Sequence]
    variables: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, FieldSpec] = field(default_factory=dict)  # what events may carry
    triggers: dict[str, Trigger] = field(default_factory=dict)
    tips: dict[str, str] = field(default_factory=dict)  # by system name, upper case
    where: str = PACKAGED_CATALOG  # the file, as every ConfigError about it names it

    def __getitem__(self, name: str) -> Sequence:
        try:
            return self.sequences[name]
        except KeyError:
            raise ConfigError(f"sequence {name!r} is not in the catalog") from None

    def windows(self) -> dict[str, Window]:
        """The send window of each sequence that declares one."""
        return {n: s.timing.window for n, s in self.sequences.items() if s.timing.window}

    def template_ids(self) -> list[str]:
        return [s.template_id for seq in self.sequences.values() for s in seq.steps]

    def trigger(self, name: str) -> Trigger:
        """The named trigger; one the catalog leaves out starts and cancels nothing."""
        return self.triggers.get(name) or Trigger(name)

    def website_triggers(self) -> list[Trigger]:
        """The triggers that are endpoints, in the catalog's order."""
        return [t for t in self.triggers.values() if t.is_website]


def load_catalog(path: Path | None = None, known_templates: Iterable[str] | None = None) -> Catalog:
    """Read and validate the catalog; every problem is a ConfigError that names the place."""
    if path is None:
        text = resources.files("notion_queue").joinpath("sequences.toml").read_text("utf-8")
        where = PACKAGED_CATALOG
    else:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"SEQUENCES_FILE {path}: {exc.strerror}") from None
        where = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    for key in data:
        if key not in TABLES:  # a typo such as [trigger.x] would otherwise pass unseen
            log.warning(
                "catalog_table_ignored",
                catalog=where,
                table=key,
                effect=f"not a catalog table (they are: {', '.join(TABLES)}); it does nothing",
            )
    known = set(known_templates) if known_templates is not None else None
    sequences = {
        name: _parse_sequence(name, body, where, known)
        for name, body in dict(data.get("sequences", {})).items()
    }
    if not sequences:
        raise ConfigError(f"{where}: no [sequences.*] tables")
    for seq in sequences.values():
        for other in seq.cancels:
            if other not in sequences:
                raise ConfigError(f"{where}: sequence {seq.name!r} cancels unknown {other!r}")
    triggers = parse_triggers(data.get("triggers"), where)
    check_trigger_sequences(triggers, {n: s.anchor for n, s in sequences.items()}, where)
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ConfigError(f"{where}: [variables] must be a table of name = value")
    fields = parse_fields(data.get("fields"), where, variables)
    if not fields:
        log.warning(
            "catalog_declares_no_fields",
            catalog=where,
            effect="events carry no values into emails; copy [fields.*] from the packaged "
            "sequences.toml",
        )
    if not triggers:
        log.warning(
            "catalog_declares_no_triggers",
            catalog=where,
            effect="no website endpoint, and no event starts a sequence; copy [triggers.*] "
            "from the packaged sequences.toml",
        )
    return Catalog(
        sequences=sequences,
        variables=dict(variables),
        fields=fields,
        triggers=triggers,
        tips=_parse_tips(data.get("tips"), where),
        where=where,
    )


def _parse_tips(raw: object, where: str) -> dict[str, str]:
    """`[tips]`: system name = the tip an email gives for it (personalized_tip_1)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f'{where}: [tips] must be a table of SYSTEM = "tip"')
    tips = {}
    for name, tip in raw.items():
        if not isinstance(tip, str) or not tip.strip():
            raise ConfigError(f"{where}: [tips]: {name} must be text (the tip for that system)")
        tips[name.upper()] = tip.strip()
    return tips


def _parse_cancel_reason(body: dict[str, Any], place: str) -> str:
    reason = body.get("cancel_reason", "")
    if not isinstance(reason, str):
        raise ConfigError(f"{place}: cancel_reason must be text")
    try:
        fields = [
            (n, spec, conv)
            for _, n, spec, conv in string.Formatter().parse(reason)
            if n is not None
        ]
    except ValueError as exc:
        raise ConfigError(f"{place}: cancel_reason {exc}") from None
    for name, spec, conversion in fields:
        if name not in REASON_TIMES or spec or conversion:
            written = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise ConfigError(
                f"{place}: cancel_reason may use {{event_time}} and {{anchor_time}}, "
                f"not {{{written}}}"
            )
    return reason


def _parse_sequence(
    name: str, body: dict[str, Any], where: str, known: set[str] | None
) -> Sequence:
    place = f"{where}: sequence {name!r}"
    anchor = body.get("anchor", "event")
    if anchor not in ANCHORS:
        raise ConfigError(f"{place}: anchor {anchor!r} is not one of {', '.join(ANCHORS)}")
    raw_steps = body.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ConfigError(f"{place}: needs a non-empty steps list")
    steps: list[Step] = []
    for number, raw in enumerate(raw_steps, start=1):
        step_place = f"{place} step {number}"
        if not isinstance(raw, dict) or "template" not in raw:
            raise ConfigError(f"{step_place}: needs a template")
        template_id = str(raw["template"])
        if known is not None and template_id not in known:
            raise ConfigError(f"{step_place}: unknown template {template_id!r}")
        try:
            offset = parse_offset(str(raw.get("offset", "0m")))
            testing = parse_offset(str(raw.get("testing_offset", raw.get("offset", "0m"))))
        except ValueError as exc:
            raise ConfigError(f"{step_place}: {exc}") from None
        if anchor == "meeting_start" and (offset > timedelta(0) or testing > timedelta(0)):
            raise ConfigError(
                f"{step_place}: offset must not be positive on a meeting_start anchor "
                "(reminders go out before the meeting)"
            )
        if steps and (offset < steps[-1].offset or testing < steps[-1].testing_offset):
            raise ConfigError(f"{step_place}: steps must be in the order they are sent")
        sent_by = raw.get("sent_by", "us")
        if sent_by not in ("us", "website"):
            raise ConfigError(f"{step_place}: sent_by must be 'website' or left out")
        steps.append(Step(number, template_id, offset, testing, sent_by == "website"))
    cancels = body.get("cancels", [])
    if not isinstance(cancels, list):
        raise ConfigError(f"{place}: cancels must be a list of sequence names")
    return Sequence(
        name=name,
        anchor=anchor,
        steps=tuple(steps),
        cancels=tuple(str(c) for c in cancels),
        description=str(body.get("description", "")),
        cancel_reason=_parse_cancel_reason(body, place),
        timing=parse_timing(body, place),
    )

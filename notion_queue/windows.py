"""When a sequence may send, and what its catalog entry says about timing.

`window = { days = "mon-fri", start = "09:00", end = "17:00" }` on a sequence: its rows go only
inside those hours of the recipient's own zone; a step that falls outside moves to the next
opening. `review = true`: its rows wait in Status `review` for a marketer's approval.
`cap_exempt = true`: MAX_EMAILS_PER_DAY does not count or move its rows.

Daylight saving is zoneinfo's: an opening at a wall time the clocks skip (02:30 on the night
they spring forward) is read as that time after the jump (03:30); in the repeated hour of the
night they fall back, the first of the two is meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from notion_queue.errors import ConfigError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_TIMING_KEYS = ("window", "review", "cap_exempt")


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time  # exclusive

    def describe(self) -> str:
        days = ",".join(DAY_NAMES[d] for d in sorted(self.days))
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, when: datetime, zone: ZoneInfo) -> bool:
        local = when.astimezone(zone)
        wall = local.time().replace(tzinfo=None, fold=0)
        return local.weekday() in self.days and self.start <= wall < self.end

    def next_open(self, when: datetime, zone: ZoneInfo) -> datetime:
        """`when` itself if the window is open then, else the window's next opening (UTC)."""
        if self.contains(when, zone):
            return when
        local = when.astimezone(zone)
        for ahead in range(8):
            day = local.date() + timedelta(days=ahead)
            if day.weekday() not in self.days:
                continue
            opening = datetime.combine(day, self.start, tzinfo=zone).astimezone(UTC)
            if opening >= when:
                return opening
        raise AssertionError("a window with at least one day opens within eight days")


@dataclass(frozen=True)
class Timing:
    """A sequence's timing keys in the catalog."""

    window: Window | None = None
    review: bool = False
    cap_exempt: bool = False


def parse_timing(body: dict[str, Any], place: str) -> Timing:
    """The `window`, `review` and `cap_exempt` keys of one `[sequences.<name>]` table."""
    for key in ("review", "cap_exempt"):
        if key in body and not isinstance(body[key], bool):
            raise ConfigError(f"{place}: {key} must be true or false")
    raw = body.get("window")
    window = None if raw is None else parse_window(raw, place)
    return Timing(
        window=window, review=bool(body.get("review")), cap_exempt=bool(body.get("cap_exempt"))
    )


def parse_window(raw: object, place: str) -> Window:
    example = '{ days = "mon-fri", start = "09:00", end = "17:00" }'
    if not isinstance(raw, dict) or set(raw) != {"days", "start", "end"}:
        raise ConfigError(f"{place}: window must be a table like {example}")
    days = _days(raw["days"], place)
    start, end = _time(raw["start"], place, "start"), _time(raw["end"], place, "end")
    if start >= end:
        raise ConfigError(f"{place}: window start must be before its end (both in one day)")
    return Window(days, start, end)


def _days(text: object, place: str) -> frozenset[int]:
    problem = ConfigError(
        f'{place}: window days must be day names or ranges, e.g. "mon-fri" or "mon,wed,sat"'
    )
    if not isinstance(text, str) or not text.strip():
        raise problem
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise problem
        a = DAY_NAMES.index(first)
        b = DAY_NAMES.index(last) if last else a
        if b < a:
            raise problem
        days.update(range(a, b + 1))
    return frozenset(days)


def _time(text: object, place: str, which: str) -> time:
    match = _TIME.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(f'{place}: window {which} must be a 24-hour time like "09:00"')
    return time(int(match.group(1)), int(match.group(2)))

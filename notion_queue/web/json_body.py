"""A webhook body, parsed strictly: only JSON that every later step can store and use.

Python's json module is lenient where a webhook must not be. It takes NaN and Infinity (which
are not JSON) and reads 1e999 as inf, both later stored as null; past 4 300 digits an integer
raises ValueError rather than JSONDecodeError; deep nesting raises RecursionError; and a lone
UTF-16 surrogate ("\\ud800", what JavaScript's substring makes of half an emoji) parses fine but
cannot be written as UTF-8, so the journal would refuse the event after it was answered 202.
Each is refused here, before anything is journaled: a problem with the body as a whole is a
400, a problem with one value is a 422 that names its field.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32  # the providers' payloads nest 5 deep; this leaves room without inviting abuse
# JavaScript's JSON.stringify writes no longer integer (from 1e21 on it uses an exponent), so
# nothing a browser or a provider sends needs more, and int() never meets 4 300 digits.
MAX_INT_DIGITS = 21
MAX_NAME_CHARS = 60  # of a field name quoted in an error message

_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_MEDIA_TYPE = re.compile(r"application/(?:[^/\s;]+\+)?json", re.ASCII)


class BodyError(ValueError):
    """Why a body is refused: `status` 400 for the body as a whole, 422 for the value at
    `field` (dotted, as pydantic names fields: `payload.attendees.0.email`)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field is not None else message)
        self.status = status
        self.message = message
        self.field = field


class _Refused:
    """A value the parser met and we will not take; the walk reports it with its field."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def content_type_problem(content_type: str | None) -> str | None:
    """None when a JSON endpoint can read a body of this Content-Type, otherwise why not.

    `application/json` (any parameters, such as charset=utf-8) and `application/<x>+json` are
    JSON. A request without the header is read as JSON, as FastAPI (the seed server) did.
    """
    if content_type is None:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    if _JSON_MEDIA_TYPE.fullmatch(media_type):
        return None
    shown = _printable(media_type) or "an empty value"
    return f"Content-Type must be application/json, not {shown}"


def parse_webhook_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; BodyError saying what is wrong with it otherwise."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BodyError(400, "body is not UTF-8") from None
    try:
        data = json.loads(
            text,
            parse_constant=lambda name: _Refused(f"{name} is not a finite number"),
            parse_float=_float,
            parse_int=_int,
        )
    except RecursionError:
        raise BodyError(400, _too_deep()) from None
    except json.JSONDecodeError:
        raise BodyError(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BodyError(400, "body must be a JSON object")
    _check_values(data)
    return data


def _float(text: str) -> float | _Refused:
    value = float(text)
    return value if math.isfinite(value) else _Refused(f"{text} is not a finite number")


def _int(text: str) -> int | _Refused:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        return _Refused(
            f"an integer of {digits} digits is too large (at most {MAX_INT_DIGITS} digits)"
        )
    return int(text)


def _too_deep() -> str:
    return f"body is nested more than {MAX_DEPTH} levels deep"


def _check_values(data: dict[str, Any]) -> None:
    """Walk the parsed body (without recursion): depth, refused numbers, lone surrogates."""
    stack: list[tuple[tuple[str, ...], Any, int]] = [((), data, 1)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, dict | list) and depth > MAX_DEPTH:
            raise BodyError(400, _too_deep())
        if isinstance(value, dict):
            for key in value:
                if _SURROGATE.search(key):
                    raise BodyError(
                        422, _surrogate_message("field name"), _field(*path, _printable(key))
                    )
            items = [((*path, _printable(key)), item, depth + 1) for key, item in value.items()]
            stack.extend(reversed(items))  # the first problem in reading order is reported
        elif isinstance(value, list):
            items = [((*path, str(i)), item, depth + 1) for i, item in enumerate(value)]
            stack.extend(reversed(items))
        elif isinstance(value, _Refused):
            raise BodyError(422, value.problem, _field(*path))
        elif isinstance(value, str) and _SURROGATE.search(value):
            raise BodyError(422, _surrogate_message("text"), _field(*path))


def _surrogate_message(what: str) -> str:
    return (
        f"the {what} contains a lone UTF-16 surrogate (half of a character such as an emoji); "
        "send whole characters, encoded as UTF-8"
    )


def _field(*path: str) -> str:
    return ".".join(path) or "body"


def _printable(text: str) -> str:
    """Text safe to quote in a message or a log: non-printable characters (surrogates included)
    written as \\uXXXX escapes, and cut short."""
    shown = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text[:MAX_NAME_CHARS])
    return shown + ("…" if len(text) > MAX_NAME_CHARS else "")

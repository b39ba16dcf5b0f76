"""Declared event fields: the only values an event may carry into emails.

The catalog declares each field an event may set (`[fields.<name>]`), with a type and an
optional fallback. Anything an event sends that is not declared is dropped; a declared value
that does not fit its type is refused (the endpoint answers 422 naming the field). A url field
must be https on a host of its allow-list: no other event value may become a link.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Literal
from urllib.parse import urlsplit

from notion_queue.errors import ConfigError
from notion_queue.intake.payloads import normalise_email, parse_time
from notion_queue.timezones import zone_named

FieldType = Literal["text", "integer", "number", "datetime", "timezone", "email", "url", "object"]
FIELD_TYPES: tuple[FieldType, ...] = (
    "text",
    "integer",
    "number",
    "datetime",
    "timezone",
    "email",
    "url",
    "object",
)
# Names the worker sets itself: no event (and no declaration) may set them.
RESERVED = frozenset({"email", "unsubscribe_url"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_HOST = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)
_INTEGER_TEXT = re.compile(r"^[+-]?\d{1,16}$")
_NUMBER_TEXT = re.compile(r"^[+-]?(\d{1,16}(\.\d{0,16})?|\.\d{1,16})$")
# Beyond this a count or a score is a mistake or an attack (and floats lose integer precision).
MAX_MAGNITUDE = 10**15
MAX_URL_LENGTH = 2000
_KEYS: dict[str, set[str]] = {
    "text": {"type", "max_length", "fallback", "description"},
    "url": {"type", "allowed_hosts", "fallback", "description"},
    "object": {"type", "description"},
}
_DEFAULT_KEYS = {"type", "fallback", "description"}


@dataclass(frozen=True)
class FieldSpec:
    """One declared field. `object`: a JSON object whose keys are read as declared fields."""

    name: str
    type: FieldType
    max_length: int | None = None
    allowed_hosts: tuple[str, ...] = ()
    fallback: Any = None

    def coerce(self, value: object) -> Any:
        """The value as its type, JSON-ready; ValueError (without the value) if it does not fit."""
        if self.type == "text":
            return _text(value, self.max_length or 0)
        if self.type == "integer":
            return _integer(value)
        if self.type == "number":
            return _number(value)
        if self.type == "datetime":
            try:
                when = parse_time(value)
            except ValueError:
                raise ValueError("must be an ISO 8601 time with a timezone") from None
            return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if self.type == "timezone":
            return zone_named(value).key
        if self.type == "email":
            try:
                return normalise_email(value)
            except ValueError:
                raise ValueError("must be a valid email address") from None
        if self.type == "url":
            return _url(value, self.allowed_hosts)
        raise ValueError("must be a JSON object")  # "object" is taken apart, never coerced


@dataclass(frozen=True)
class TakenFields:
    """What an event carries into its rows, and what it sent that was dropped."""

    values: dict[str, Any] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()  # names that are not declared (never their values)


def take_fields(
    data: Mapping[str, Any], fields: Mapping[str, FieldSpec], *, handled: Iterable[str] = ()
) -> TakenFields:
    """The declared fields of an event, each coerced to its type.

    `handled` names keys the payload model reads itself (the address, a full name): neither
    variables nor ignored. An `object` field's keys are read as top-level fields; the
    top-level value wins. A value that does not fit raises ValueError naming the field.
    """
    skip = set(handled)
    values: dict[str, Any] = {}
    ignored: list[str] = []
    nested: list[tuple[str, Mapping[str, Any]]] = []
    for name, value in data.items():
        if name in skip or value is None:
            continue
        spec = fields.get(name)
        if spec is None:
            ignored.append(name)
            continue
        if value == "":
            continue
        if spec.type == "object":
            if not isinstance(value, Mapping):
                raise ValueError(f"{name}: must be a JSON object")
            nested.append((name, value))
            continue
        values[name] = _coerced(spec, name, value)
    for parent, inner in nested:
        for key, value in inner.items():
            spec = fields.get(key)
            if spec is None or spec.type == "object":
                ignored.append(f"{parent}.{key}")
                continue
            if key in values or value is None or value == "":
                continue
            values[key] = _coerced(spec, f"{parent}.{key}", value)
    return TakenFields(values, tuple(ignored))


def _coerced(spec: FieldSpec, where: str, value: object) -> Any:
    try:
        return spec.coerce(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def with_fallbacks(values: Mapping[str, Any], fields: Mapping[str, FieldSpec]) -> dict[str, Any]:
    """The values, with the fallback of each declared field that has no value."""
    fallbacks = {
        name: spec.fallback
        for name, spec in fields.items()
        if spec.fallback is not None and values.get(name) in (None, "")
    }
    return {**values, **fallbacks}


def safe_url_fields(
    variables: Mapping[str, Any], fields: Mapping[str, FieldSpec]
) -> dict[str, Any]:
    """A row's stored values with every url field checked again against today's allow-list:
    a value that no longer fits (a row written before the check, a marketer's edit) is dropped."""
    safe = dict(variables)
    for name, spec in fields.items():
        if spec.type == "url" and name in safe:
            try:
                safe[name] = spec.coerce(safe[name])
            except ValueError:
                del safe[name]
    return safe


def url_field_names(fields: Mapping[str, FieldSpec]) -> frozenset[str]:
    return frozenset(name for name, spec in fields.items() if spec.type == "url")


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    """Exact host, or "*.domain" for any subdomain of domain (not domain itself)."""
    host = host.lower()
    for pattern in allowed_hosts:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def _text(value: object, max_length: int) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    text = value.strip()
    if len(text) > max_length:
        raise ValueError(f"is longer than {max_length} characters")
    for ch in text:
        category = unicodedata.category(ch)
        if (category == "Cc" and ch not in "\n\t") or category in ("Cs", "Co", "Cn"):
            raise ValueError("contains a control or invalid character")
    return text


def _integer(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, str) and _INTEGER_TEXT.match(value.strip()):
        value = int(value.strip())
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ValueError("must be a whole number")
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError(f"must be between -{MAX_MAGNITUDE} and {MAX_MAGNITUDE}")
    return value


def _number(value: object) -> int | float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, str) and _NUMBER_TEXT.match(value.strip()):
        text = value.strip()
        value = int(text) if _INTEGER_TEXT.match(text) else float(text)
    if not isinstance(value, int | float):
        raise ValueError("must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError(f"must be between -{MAX_MAGNITUDE} and {MAX_MAGNITUDE}")
    return value


def _url(value: object, allowed_hosts: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a URL string")
    url = value.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"is longer than {MAX_URL_LENGTH} characters")
    # A browser reads a backslash as a slash and skips what is before an @: both can hide the
    # real host from a check like this one, so neither is accepted, nor any space or control.
    if any(ch in url for ch in "\\@") or any(not ch.isprintable() or ch.isspace() for ch in url):
        raise ValueError("is not a plain https URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ValueError("must be an https URL")
    if port not in (None, 443) or not host_allowed(parts.hostname, allowed_hosts):
        raise ValueError("links to a host that is not allowed for this field")
    return url


def parse_fields(
    raw: object, where: str, campaign_variables: Mapping[str, Any]
) -> dict[str, FieldSpec]:
    """The catalog's `[fields.*]` tables, validated; each mistake is one ConfigError line."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [fields] must hold one table per field")
    fields = {name: _parse_field(name, body, where) for name, body in raw.items()}
    for name in fields:
        if name in campaign_variables:
            raise ConfigError(
                f"{where}: field {name!r} has the name of a campaign variable in [variables]; "
                "campaign variables cannot come from an event, rename one of them"
            )
    return fields


def _parse_field(name: str, body: object, where: str) -> FieldSpec:
    place = f"{where}: field {name!r}"
    if not _NAME.match(name):
        raise ConfigError(f"{place}: a name is letters, digits and _ (a template variable)")
    if name in RESERVED:
        raise ConfigError(f"{place}: {name} is set by notion-queue itself, not by events")
    if not isinstance(body, dict):
        raise ConfigError(f'{place}: must be a table, e.g. [fields.{name}] type = "text"')
    kind = body.get("type")
    if kind not in FIELD_TYPES:
        raise ConfigError(f"{place}: type {kind!r} is not one of {', '.join(FIELD_TYPES)}")
    unknown = sorted(set(body) - _KEYS.get(kind, _DEFAULT_KEYS))
    if unknown:
        raise ConfigError(f"{place}: {unknown[0]!r} does not apply to a {kind} field")
    max_length = body.get("max_length")
    if kind == "text" and (
        not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1
    ):
        raise ConfigError(f"{place}: a text field needs max_length, a positive whole number")
    hosts = body.get("allowed_hosts")
    if kind == "url":
        if not isinstance(hosts, list) or not hosts:
            raise ConfigError(
                f'{place}: a url field needs allowed_hosts, e.g. ["portal.example.com"]'
            )
        for host in hosts:
            if not isinstance(host, str) or not _HOST.match(host.lower()):
                raise ConfigError(
                    f"{place}: allowed host {host!r} is not a host name or '*.domain'"
                )
    spec = FieldSpec(
        name=name,
        type=kind,
        max_length=max_length if kind == "text" else None,
        allowed_hosts=tuple(h.lower() for h in hosts) if kind == "url" and hosts else (),
    )
    fallback = body.get("fallback")
    if fallback is None:
        return spec
    try:
        checked = spec.coerce(fallback)
    except ValueError as exc:
        raise ConfigError(f"{place}: fallback {exc}") from None
    return FieldSpec(spec.name, spec.type, spec.max_length, spec.allowed_hosts, checked)

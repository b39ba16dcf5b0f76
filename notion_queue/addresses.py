"""What we accept as a recipient address: one rule for webhooks, the CLI and rows typed by hand.

An address is stored and sent in ASCII: a local part of RFC 5322 dot-atom characters (we cannot
send to internationalised mailboxes, RFC 6531) and a domain of letters, digits and hyphens.
Anything that would change what a reader sees or what a mail system does is refused by name:
control characters (NUL, DEL, C1), invisible formatting characters (bidi overrides such as
U+202E, zero-width characters, the BOM, the soft hyphen: IDNA's mapping would silently drop
some of them and turn the address into a different one), spaces and line separators, and RFC
2047 encoded words (`=?utf-8?q?a?=@example.com`, which a mail client decodes into another
address). A webhook's domain in Unicode (`user@bücher.de`) is converted to its IDNA form
(`user@xn--bcher-kva.de`, IDNA 2008 with the UTS 46 mapping, as browsers do), so Resend is
only ever given an address it can deliver to.
"""

from __future__ import annotations

import re
import unicodedata

import idna

MAX_EMAIL_LENGTH = 200  # Notion's limit for an email property
MAX_LOCAL_LENGTH = 64  # RFC 5321
MAX_LABEL_LENGTH = 63  # RFC 1035

# RFC 5322 atext, less the characters the old rule already refused (' and the specials).
_LOCAL_ATOM = re.compile(r"[A-Za-z0-9!#$%&*+/=?^_`{|}~-]+", re.ASCII)
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?", re.ASCII)
_TOP_LEVEL = re.compile(r"(?:[a-z]{2,}|xn--[a-z0-9-]+)", re.ASCII | re.IGNORECASE)
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[bq]\?", re.IGNORECASE)
_KINDS = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character",
    "Cs": "a lone UTF-16 surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned character",
    "Zs": "a space",
    "Zl": "a space",
    "Zp": "a space",
}


class InvalidAddress(ValueError):
    """The message names the address as given and, where there is more to say, why."""

    def __init__(self, address: str, why: str = "") -> None:
        super().__init__(f"{address!r} is not a valid email address" + (f": {why}" if why else ""))


def canonical_email(value: str) -> str:
    """The address as we store and send it: trimmed, lowercased, its domain in ASCII.
    InvalidAddress (a ValueError) when it cannot be one."""
    address = value.strip(" \t\r\n").lower()
    local, _, domain = address.rpartition("@")
    if local and domain and not domain.isascii() and _hidden_character(address) is None:
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise InvalidAddress(
                value, "its domain is not a valid internationalised domain name"
            ) from None
    why = address_problem(f"{local}@{domain}" if local and domain else address)
    if why is not None:
        raise InvalidAddress(value, why)
    return f"{local}@{domain}"


def address_problem(address: str) -> str | None:
    """None when `address` can be sent to exactly as written; otherwise why not ("" when it
    simply does not look like name@example.com)."""
    hidden = _hidden_character(address)
    if hidden is not None:
        return hidden
    if _ENCODED_WORD.search(address):
        return "it contains an RFC 2047 encoded word (=?charset?q?...?=), not an address"
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return ""
    if not local.isascii():
        return "the part before @ must be ASCII (mail to internationalised mailboxes is not sent)"
    if not domain.isascii():
        try:
            ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            return "its domain is not a valid internationalised domain name"
        return f"write the domain in its ASCII form: {local}@{ascii_domain}"
    if len(address) > MAX_EMAIL_LENGTH or len(local) > MAX_LOCAL_LENGTH:
        return ""
    if not all(_LOCAL_ATOM.fullmatch(atom) for atom in local.split(".")):
        return ""
    labels = domain.split(".")
    if len(labels) < 2 or not all(
        len(label) <= MAX_LABEL_LENGTH and _LABEL.fullmatch(label) for label in labels
    ):
        return ""
    if not _TOP_LEVEL.fullmatch(labels[-1]):
        return ""
    return None


def _hidden_character(address: str) -> str | None:
    for char in address:
        kind = _KINDS.get(unicodedata.category(char))
        if kind is not None:
            return f"it contains {kind} (U+{ord(char):04X})"
    return None

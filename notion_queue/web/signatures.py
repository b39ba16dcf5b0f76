"""Webhook signatures, compared in constant time over the raw body.

Each verifier answers None when the signature is right, otherwise one sentence saying what is
wrong (the endpoint answers 401 with it). Headers are anyone's bytes (Starlette reads them as
latin-1): every part is checked against its exact shape, ASCII digits and hex only, before
any arithmetic, so a malformed header is a 401 with a reason, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping

WEBSITE_SIGNATURE_HEADER = "X-Webhook-Signature"

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
_UNIX_TIME = re.compile(r"[0-9]{1,12}", re.ASCII)  # seconds; 12 digits reach the year 33658


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str:
    return headers.get(name.lower()) or headers.get(name) or ""


def _same_hex(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.lower().encode(), expected.encode())


def verify_website_signature(secret: str, body: bytes, headers: Mapping[str, str]) -> str | None:
    """`X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the raw body>` (the prefix optional)."""
    given = _header(headers, WEBSITE_SIGNATURE_HEADER).strip()
    if not given:
        return f"missing {WEBSITE_SIGNATURE_HEADER} header"
    given = given.removeprefix("sha256=")
    if not _HEX_SHA256.fullmatch(given):
        return f"{WEBSITE_SIGNATURE_HEADER} must look like sha256=<64 hex digits>"
    if not _same_hex(given, hmac_sha256_hex(secret, body)):
        return f"{WEBSITE_SIGNATURE_HEADER} does not match the body"
    return None


CALCOM_SIGNATURE_HEADER = "X-Cal-Signature-256"
CALCOM_UNSIGNED = "no-secret-provided"  # what Cal.com sends for a webhook without a secret
CALENDLY_SIGNATURE_HEADER = "Calendly-Webhook-Signature"
CALENDLY_TOLERANCE_SECONDS = 180


def verify_calcom_signature(secret: str, body: bytes, headers: Mapping[str, str]) -> str | None:
    """Cal.com: `X-Cal-Signature-256: <lowercase hex HMAC-SHA256 of the raw body>`."""
    given = _header(headers, CALCOM_SIGNATURE_HEADER).strip()
    if not given:
        return f"missing {CALCOM_SIGNATURE_HEADER} header"
    if given == CALCOM_UNSIGNED:
        return (
            f"{CALCOM_SIGNATURE_HEADER} is {CALCOM_UNSIGNED}: the Cal.com webhook has no secret;"
            " give it the same secret as CALCOM_WEBHOOK_SECRET"
        )
    if not _HEX_SHA256.fullmatch(given):
        return f"{CALCOM_SIGNATURE_HEADER} must look like <64 hex digits>"
    if not _same_hex(given, hmac_sha256_hex(secret, body)):
        return f"{CALCOM_SIGNATURE_HEADER} does not match the body (check CALCOM_WEBHOOK_SECRET)"
    return None


def verify_calendly_signature(
    signing_key: str, body: bytes, headers: Mapping[str, str], now: float
) -> str | None:
    """Calendly: `Calendly-Webhook-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, with
    a tolerance window so a captured request cannot be replayed later."""
    given = _header(headers, CALENDLY_SIGNATURE_HEADER)
    if not given.strip():
        return f"missing {CALENDLY_SIGNATURE_HEADER} header"
    parts = dict(item.strip().split("=", 1) for item in given.split(",") if "=" in item)
    timestamp, signature = parts.get("t", "").strip(), parts.get("v1", "").strip()
    if not _UNIX_TIME.fullmatch(timestamp) or not _HEX_SHA256.fullmatch(signature):
        return f"{CALENDLY_SIGNATURE_HEADER} must look like t=<unix time>,v1=<64 hex digits>"
    if abs(now - int(timestamp)) > CALENDLY_TOLERANCE_SECONDS:
        return f"{CALENDLY_SIGNATURE_HEADER} is too old (more than {CALENDLY_TOLERANCE_SECONDS} s)"
    expected = hmac_sha256_hex(signing_key, timestamp.encode() + b"." + body)
    if not _same_hex(signature, expected):
        return f"{CALENDLY_SIGNATURE_HEADER} does not match the body (check CALENDLY_WEBHOOK_SIGNING_KEY)"
    return None


SVIX_TOLERANCE_SECONDS = 300  # as the Svix libraries and the resend SDK
_SVIX_ID = re.compile(r"[\x21-\x7e]{1,256}", re.ASCII)  # printable ASCII, no spaces


def verify_resend_signature(
    secret: str, body: bytes, headers: Mapping[str, str], *, now: float | None = None
) -> str | None:
    """Resend signs through Svix: `svix-signature: v1,<base64 HMAC-SHA256 of
    "svix-id.svix-timestamp.body">` (space-separated, one match is enough), keyed with the
    base64 after `whsec_`, within 5 minutes of svix-timestamp.

    Checked here rather than by the resend SDK, whose verifier also parses the body (leniently:
    a deep body raised RecursionError, a 500) and reads its own clock. `now` defaults to the
    system clock, as the SDK did."""
    message_id = headers.get("svix-id", "")
    timestamp = headers.get("svix-timestamp", "")
    signatures = headers.get("svix-signature", "")
    for name, value in (("svix-id", message_id), ("svix-timestamp", timestamp)):
        if not value:
            return f"missing {name} header"
    if not signatures.strip():
        return "missing svix-signature header"
    if not _SVIX_ID.fullmatch(message_id):
        return "svix-id must be printable ASCII without spaces (at most 256 characters)"
    if not _UNIX_TIME.fullmatch(timestamp):
        return "svix-timestamp must be a unix time in seconds"
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > SVIX_TOLERANCE_SECONDS:
        return f"svix-timestamp is more than {SVIX_TOLERANCE_SECONDS} s from now (a replayed or delayed event)"
    candidates = [item.split(",", 1) for item in signatures.split() if "," in item]
    if not candidates:
        return "svix-signature must look like v1,<base64> (several separated by spaces)"
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"))
    except (binascii.Error, ValueError):
        return "RESEND_WEBHOOK_SECRET is not a Resend signing secret (whsec_ followed by base64)"
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for version, signature in candidates:
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return None
    return "svix-signature: no matching signature (check RESEND_WEBHOOK_SECRET)"

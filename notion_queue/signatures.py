"""Webhook signatures, compared in constant time over the raw body."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

WEBSITE_SIGNATURE_HEADER = "X-Webhook-Signature"


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_website_signature(secret: str, body: bytes, headers: Mapping[str, str]) -> str | None:
    """None when `X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the raw body>` is right;
    otherwise what is wrong with it."""
    given = headers.get(WEBSITE_SIGNATURE_HEADER.lower()) or headers.get(WEBSITE_SIGNATURE_HEADER)
    if not given:
        return f"missing {WEBSITE_SIGNATURE_HEADER} header"
    given = given.strip().removeprefix("sha256=")
    if not hmac.compare_digest(given.lower().encode(), hmac_sha256_hex(secret, body).encode()):
        return f"{WEBSITE_SIGNATURE_HEADER} does not match the body"
    return None


CALCOM_SIGNATURE_HEADER = "X-Cal-Signature-256"
CALENDLY_SIGNATURE_HEADER = "Calendly-Webhook-Signature"
CALENDLY_TOLERANCE_SECONDS = 180


def verify_calcom_signature(secret: str, body: bytes, headers: Mapping[str, str]) -> str | None:
    """Cal.com: `X-Cal-Signature-256: <lowercase hex HMAC-SHA256 of the raw body>`."""
    given = headers.get(CALCOM_SIGNATURE_HEADER.lower()) or headers.get(CALCOM_SIGNATURE_HEADER)
    if not given:
        return f"missing {CALCOM_SIGNATURE_HEADER} header"
    if not hmac.compare_digest(
        given.strip().lower().encode(), hmac_sha256_hex(secret, body).encode()
    ):
        return f"{CALCOM_SIGNATURE_HEADER} does not match the body (check CALCOM_WEBHOOK_SECRET)"
    return None


def verify_calendly_signature(
    signing_key: str, body: bytes, headers: Mapping[str, str], now: float
) -> str | None:
    """Calendly: `Calendly-Webhook-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, with
    a tolerance window so a captured request cannot be replayed later."""
    given = headers.get(CALENDLY_SIGNATURE_HEADER.lower()) or headers.get(CALENDLY_SIGNATURE_HEADER)
    if not given:
        return f"missing {CALENDLY_SIGNATURE_HEADER} header"
    parts = dict(item.strip().split("=", 1) for item in given.split(",") if "=" in item)
    timestamp, signature = parts.get("t", ""), parts.get("v1", "")
    if not timestamp.isdigit() or not signature:
        return f"{CALENDLY_SIGNATURE_HEADER} must look like t=<unix time>,v1=<hex>"
    if abs(now - int(timestamp)) > CALENDLY_TOLERANCE_SECONDS:
        return f"{CALENDLY_SIGNATURE_HEADER} is too old (more than {CALENDLY_TOLERANCE_SECONDS} s)"
    expected = hmac_sha256_hex(signing_key, timestamp.encode() + b"." + body)
    if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
        return f"{CALENDLY_SIGNATURE_HEADER} does not match the body (check CALENDLY_WEBHOOK_SIGNING_KEY)"
    return None


def verify_resend_signature(secret: str, body: bytes, headers: Mapping[str, str]) -> str | None:
    """Resend signs through Svix (svix-id, svix-timestamp, svix-signature; 5-minute tolerance).
    The resend SDK's verifier does the crypto."""
    import resend

    try:
        resend.Webhooks.verify(
            {
                "payload": body.decode("utf-8"),
                "headers": {
                    "id": headers.get("svix-id", ""),
                    "timestamp": headers.get("svix-timestamp", ""),
                    "signature": headers.get("svix-signature", ""),
                },
                "webhook_secret": secret,
            }
        )
    except (ValueError, UnicodeDecodeError) as exc:
        return f"Resend webhook signature: {exc}"
    return None

"""Production (MAIL_BACKEND=resend) refuses settings that would be unsafe with real recipients,
and says how each webhook endpoint is protected. Development (the outbox) stays open.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from notion_queue.settings import Settings

Protection = Literal["signed", "unsigned_rate_limited", "unsigned", "off"]

MIN_ADMIN_TOKEN_LENGTH = 32

# Each handler's signature scheme → the setting that holds its secret.
SECRET_SETTING = {
    "website": "WEBHOOK_SECRET",
    "calcom": "CALCOM_WEBHOOK_SECRET",
    "calendly": "CALENDLY_WEBHOOK_SIGNING_KEY",
    "resend": "RESEND_WEBHOOK_SECRET",
}


def is_production(settings: Settings) -> bool:
    return settings.mail_backend == "resend"


def production_problems(settings: Settings) -> list[str]:
    """What stops a production process from starting, one sentence each naming the setting and
    the fix; empty in development and when all is well. Never contains a secret."""
    if not is_production(settings):
        return []
    problems = []
    url_problem = public_base_url_problem(settings.public_base_url)
    if url_problem:
        problems.append(url_problem)
    for name in sorted(settings.secrets_given_empty):
        problems.append(
            f"{name} is set but empty, and an empty key is one anyone can use: "
            f"set it to the real secret, or remove the line to leave it unset"
        )
    if settings.admin_token is not None and len(settings.admin_token.get_secret_value()) < (
        MIN_ADMIN_TOKEN_LENGTH
    ):
        problems.append(
            f"ADMIN_TOKEN is shorter than {MIN_ADMIN_TOKEN_LENGTH} characters, and it opens the "
            "queue page to anyone who guesses it: set a long random one (python3 -c "
            "'import secrets; print(secrets.token_urlsafe(32))'), or remove it to turn the "
            "page off"
        )
    if settings.webhook_secret is None and not settings.allow_unsigned_webhooks:
        problems.append(
            "WEBHOOK_SECRET is not set, so anyone could post to the website endpoints: "
            "set WEBHOOK_SECRET and sign the website's requests, or set "
            "ALLOW_UNSIGNED_WEBHOOKS=true for a site that posts from the browser "
            "(unsigned posts are then rate limited)"
        )
    return problems


def public_base_url_problem(url: str) -> str | None:
    """Unsubscribe links (RFC 8058: https) are built on PUBLIC_BASE_URL: recipients must reach it."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "https" or not parts.hostname:
        return (
            "PUBLIC_BASE_URL must be an https:// address, because every email's unsubscribe "
            "link is built on it: set PUBLIC_BASE_URL=https://<the server's public host>"
        )
    if is_this_machine(parts.hostname):
        return (
            f"PUBLIC_BASE_URL points at this machine ({parts.hostname}), which recipients "
            "cannot reach from their inbox: set PUBLIC_BASE_URL=https://<the server's public host>"
        )
    return None


def is_this_machine(host: str) -> bool:
    """localhost, *.localhost, a loopback or unspecified address, in any spelling a browser
    accepts (127.1, 2130706433, ::ffff:127.0.0.1)."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


@dataclass(frozen=True)
class EndpointProtection:
    protection: Protection
    setting: str

    @property
    def off_message(self) -> str:
        return (
            f"this endpoint is off: {self.setting} is not set, and in production "
            f"(MAIL_BACKEND=resend) unsigned events are refused; set {self.setting} to turn it on"
        )


def endpoint_protection(settings: Settings, signature: str) -> EndpointProtection:
    """How a webhook endpoint signed with `signature` is protected under these settings."""
    setting = SECRET_SETTING[signature]
    secret = getattr(settings, setting.lower())
    if secret is not None:
        return EndpointProtection("signed", setting)
    if not is_production(settings):
        return EndpointProtection("unsigned", setting)
    if signature == "website" and settings.allow_unsigned_webhooks:
        return EndpointProtection("unsigned_rate_limited", setting)
    return EndpointProtection("off", setting)


def exit_if_unsafe_in_production(settings: Settings) -> None:
    """For every process that can send: one line on stderr and exit 2 on a production problem."""
    problems = production_problems(settings)
    if problems:
        print(
            "notion-queue: refusing to start in production (MAIL_BACKEND=resend): "
            + "; ".join(problems),
            file=sys.stderr,
        )
        raise SystemExit(2)

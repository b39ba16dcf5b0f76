"""Signed unsubscribe links (RFC 8058 one-click): the token is the address and an HMAC of it,
so it cannot be forged or altered without UNSUBSCRIBE_SECRET."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import quote

from notion_queue.private_files import private_dir, tighten


class UnsubscribeTokens:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("UNSUBSCRIBE_SECRET must be at least 16 characters")
        self._secret = secret

    def token(self, email: str) -> str:
        address = email.strip().lower().encode()
        mac = hmac.new(self._secret, b"unsubscribe:" + address, hashlib.sha256).digest()[:16]
        return f"{_b64(address)}.{_b64(mac)}"

    def email_for(self, token: str) -> str | None:
        """The address a token was made for, or None when it is forged, altered or garbled."""
        try:
            encoded, mac = token.strip().split(".", 1)
            address = _unb64(encoded)
            expected = hmac.new(self._secret, b"unsubscribe:" + address, hashlib.sha256)
            if hmac.compare_digest(expected.digest()[:16], _unb64(mac)):
                return address.decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return None

    def derived_key(self, purpose: str) -> bytes:
        """A key for another signed link (the template preview), derived from the secret so the
        secret itself signs nothing but unsubscribe links."""
        return hmac.new(
            self._secret, b"notion-queue derived key:" + purpose.encode(), "sha256"
        ).digest()

    def url(self, base_url: str, email: str) -> str:
        return f"{base_url.rstrip('/')}/unsubscribe?token={quote(self.token(email))}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_secret(configured: str | None, state_dir: Path) -> bytes:
    """UNSUBSCRIBE_SECRET, or one generated once and kept in STATE_DIR (embedded default), so
    the server and the worker on one host agree without configuration."""
    if configured:
        return configured.encode()
    path = Path(state_dir) / "unsubscribe.key"
    if not path.exists():
        private_dir(path.parent)
        tmp = path.with_name(f".unsubscribe.{secrets.token_hex(4)}")
        tmp.write_text(secrets.token_urlsafe(32))
        tmp.chmod(0o600)
        # link() fails when the other process won the race; then both read the winner's key.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        tmp.unlink()
    tighten(path)
    return path.read_text().strip().encode()

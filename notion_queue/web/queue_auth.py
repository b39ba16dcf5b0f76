"""Who may use the queue page: whoever knows ADMIN_TOKEN.

A person signs in once with a form (the token goes in a POST body, never in a URL that a proxy
or a browser history would keep) and gets a session cookie: HttpOnly, SameSite=Strict, Secure
in production. The cookie holds an HMAC derived from the token, not the token. A script sends
`Authorization: Bearer <token>` instead. Every comparison is constant-time.

Each form carries a CSRF token (also derived from ADMIN_TOKEN); a POST signed in by cookie must
carry it. A bearer request needs none: no other site can make a browser send that header.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "notion_queue_admin"
MAX_FORM_BYTES = 4096
Signed = Literal["cookie", "bearer"]


@dataclass(frozen=True)
class AdminAuth:
    token: str
    secure_cookie: bool

    def _derive(self, purpose: str) -> str:
        return hmac.new(self.token.encode(), purpose.encode(), hashlib.sha256).hexdigest()

    @property
    def session(self) -> str:
        return self._derive("notion-queue queue page session")

    @property
    def csrf(self) -> str:
        return self._derive("notion-queue queue page csrf")

    def token_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token.encode())

    def signed_in(self, request: Request) -> Signed | None:
        """How the request proves it knows the token, or None."""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and given and self.token_matches(given.strip()):
            return "bearer"
        cookie = request.cookies.get(COOKIE, "")
        if cookie and hmac.compare_digest(cookie.encode(), self.session.encode()):
            return "cookie"
        return None

    def csrf_ok(self, signed: Signed, form: dict[str, str]) -> bool:
        if signed == "bearer":
            return True
        return hmac.compare_digest(form.get("csrf", "").encode(), self.csrf.encode())

    def set_session(self, response: Response) -> None:
        response.set_cookie(
            COOKIE,
            self.session,
            path="/queue",
            httponly=True,
            samesite="strict",
            secure=self.secure_cookie,
        )

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(
            COOKIE, path="/queue", httponly=True, samesite="strict", secure=self.secure_cookie
        )


async def read_form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form (the page's own), one value per name; None when it is not one."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[0] for name, values in fields.items()}

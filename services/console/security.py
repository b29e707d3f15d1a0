"""Cookies, CSRF tokens, form parsing and the response headers every page carries.

CSRF: every form carries a token that is an HMAC of the session id (signed in) or of a
random pre-sign-in cookie (the sign-in form), under the console secret. A forged form
from another site has neither the cookie (SameSite=Strict) nor the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import parse_qs

from fastapi import Request, Response

__all__ = [
    "LANGUAGE_COOKIE",
    "PRESESSION_COOKIE",
    "SESSION_COOKIE",
    "FormTooLarge",
    "csrf_token",
    "csrf_valid",
    "new_presession",
    "read_form",
    "secure_headers",
    "set_cookie",
]

SESSION_COOKIE = "aviso_session"
PRESESSION_COOKIE = "aviso_presession"
LANGUAGE_COOKIE = "aviso_lang"
_MAX_FORM_BYTES = 64 * 1024

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class FormTooLarge(ValueError):
    """The form body is larger than any console form."""


def csrf_token(secret: str, binding: str) -> str:
    """The CSRF token of a session id (or pre-sign-in cookie)."""
    return hmac.new(secret.encode(), f"csrf:{binding}".encode(), hashlib.sha256).hexdigest()


def csrf_valid(secret: str, binding: str | None, token: str | None) -> bool:
    """Whether `token` is the CSRF token of `binding`."""
    if not binding or not token:
        return False
    return hmac.compare_digest(csrf_token(secret, binding), token)


def new_presession() -> str:
    """A random value binding the sign-in form's CSRF token to this browser."""
    return secrets.token_urlsafe(24)


async def read_form(request: Request) -> dict[str, list[str]]:
    """The url-encoded form of `request` (every value of each field)."""
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise FormTooLarge
    return parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)


def set_cookie(
    response: Response, name: str, value: str, *, secure: bool, max_age: int | None = None
) -> None:
    """An HttpOnly, SameSite=Strict cookie for the whole console."""
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, secure=secure, samesite="strict", path="/"
    )


def secure_headers(response: Response) -> None:
    """No caching (pages may hold restricted detail), no framing, a strict CSP."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"

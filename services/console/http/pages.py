"""What every page shares: who is signed in, rendering, CSRF checks, refusals as pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.console.accounts import ConsoleSession, resolve_session
from services.console.deps import ConsoleDeps
from services.console.i18n import Translate, pick_language, translator
from services.console.permissions import nav_for
from services.console.security import (
    LANGUAGE_COOKIE,
    SESSION_COOKIE,
    csrf_token,
    csrf_valid,
    read_form,
    secure_headers,
    set_cookie,
)

__all__ = [
    "CsrfRefused",
    "SignInRequired",
    "Viewer",
    "age_minutes",
    "check_csrf",
    "field",
    "language_of",
    "page_html",
    "redirect",
    "render",
    "safe_next",
    "set_session_cookie",
    "sign_in_redirect",
    "t_for",
    "viewer",
]

_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
_ENV = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
# Every time a person reads is in the department's time zone (BRIEF).
_ZONE = ZoneInfo("America/Chicago")


def _local(value: str | datetime | None) -> str:
    if value is None or value == "":
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(_ZONE).strftime("%Y-%m-%d %H:%M")


_ENV.filters["local"] = _local


def age_minutes(since: str, now: datetime) -> int:
    """Whole minutes from an ISO timestamp to `now`."""
    return max(0, int((now - datetime.fromisoformat(since)).total_seconds() // 60))


class SignInRequired(Exception):
    """No live session: the handler sends the browser to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRefused(Exception):
    """A form without a valid CSRF token (answered 403)."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in person of a request."""

    session: ConsoleSession
    token: str  # the cookie: an API token of this person's role and subject


async def viewer(request: Request) -> Viewer:
    """FastAPI dependency: the signed-in person, or SignInRequired."""
    deps: ConsoleDeps = request.app.state.deps
    cookie = request.cookies.get(SESSION_COOKIE, "")
    live = None
    if cookie:
        async with deps.auth_sessions.begin() as session:
            live = await resolve_session(
                session, cookie=cookie, now=deps.clock(), idle=deps.idle_timeout
            )
    if live is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    request.state.viewer = Viewer(live, cookie)
    return request.state.viewer  # type: ignore[no-any-return]


def language_of(request: Request) -> str:
    """The signed-in person's language, else the cookie's, else the browser's."""
    found: Viewer | None = getattr(request.state, "viewer", None)
    if found is not None:
        return found.session.language
    return pick_language(
        request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
    )


def t_for(request: Request) -> Translate:
    """The translator of the request's language."""
    return translator(language_of(request))


async def check_csrf(request: Request, binding: str | None) -> dict[str, list[str]]:
    """The request's form, if its CSRF token matches `binding`; else CsrfRefused."""
    deps: ConsoleDeps = request.app.state.deps
    form = await read_form(request)
    if not csrf_valid(deps.secret, binding, (form.get("csrf") or [""])[0]):
        raise CsrfRefused
    return form


def field(form: dict[str, list[str]], name: str, default: str = "") -> str:
    """One form field's first value, stripped."""
    return (form.get(name) or [default])[0].strip()


def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A page in the person's language, with navigation, CSRF token and safe headers."""
    response = HTMLResponse(page_html(request, template, **context), status_code=status_code)
    secure_headers(response)
    return response


def page_html(request: Request, template: str, **context: Any) -> str:
    """A template rendered for the request's person (a page, or a fragment of one)."""
    deps: ConsoleDeps = request.app.state.deps
    found: Viewer | None = getattr(request.state, "viewer", None)
    language = language_of(request)
    binding = found.session.session_id if found else context.pop("presession", None)
    return _ENV.get_template(template).render(
        t=translator(language),
        lang=language,
        me=found.session if found else None,
        nav=nav_for(found.session.role) if found else (),
        path=request.url.path,
        csrf=csrf_token(deps.secret, binding) if binding else "",
        refresh_s=int(deps.settings.console_refresh_s),
        **context,
    )


def safe_next(value: str) -> str:
    """`value` when it is a path of this console, else "/"."""
    # Only paths of this console: never an absolute URL (no open redirect). Browsers read a
    # backslash as a slash, so a path holding one could turn into "//elsewhere": refused.
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def set_session_cookie(response: Response, deps: ConsoleDeps, cookie: str) -> None:
    """Give the browser the session just opened (however the person signed in)."""
    set_cookie(
        response,
        SESSION_COOKIE,
        cookie,
        secure=deps.settings.console_cookie_secure,
        max_age=int(deps.session_ttl.total_seconds()),
    )


def redirect(path: str) -> Response:
    """303 See Other to `path` (after a form)."""
    response = RedirectResponse(path, status_code=303)
    secure_headers(response)
    return response


def sign_in_redirect(next_path: str) -> Response:
    """To the sign-in page, coming back to `next_path` afterwards."""
    return redirect(f"/signin?next={quote(next_path, safe='')}")

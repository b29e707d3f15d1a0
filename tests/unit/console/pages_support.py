"""The console app on an embedded SQLite auth store, with the three services faked behind an
httpx transport (the console's own behaviour is under test, not the services')."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pyotp
from fastapi import FastAPI

from services.common.auth import Role
from services.common.migrations import upgrade
from services.console.accounts import LockoutPolicy, SecretBox, create_user, sign_in
from services.console.accounts.sessions import ConsoleSession
from services.console.app import create_app
from services.console.config import ConsoleSettings
from services.console.deps import ConsoleDeps
from services.console.security import SESSION_COOKIE, csrf_token

__all__ = ["SECRET", "FakeServices", "SignedIn", "console_as"]

SECRET = "pages-test-secret"
_PORTS = {"8001": "intake", "8002": "router", "8003": "rumor_control"}

Answer = Callable[[httpx.Request], httpx.Response] | httpx.Response


@dataclass
class FakeServices:
    """Canned answers by (method, service, path); every request is kept for assertions."""

    answers: dict[tuple[str, str, str], Answer] = field(default_factory=dict)
    requests: list[tuple[str, httpx.Request]] = field(default_factory=list)

    def on(self, method: str, service: str, path: str, answer: Answer | Any) -> None:
        """Answer `method path` of `service` (a Response, a function, or JSON with 200)."""
        if not isinstance(answer, httpx.Response) and not callable(answer):
            answer = httpx.Response(200, json=answer)
        self.answers[(method, service, path)] = answer

    def handle(self, request: httpx.Request) -> httpx.Response:
        """The httpx transport's handler."""
        service = _PORTS[str(request.url.port)]
        self.requests.append((service, request))
        answer = self.answers.get((request.method, service, request.url.path))
        if answer is None:
            return httpx.Response(404, json={"title": "Not Found"})
        return answer(request) if callable(answer) else answer

    def sent(self, method: str, service: str, path: str) -> list[httpx.Request]:
        """Requests the console sent to `method path` of `service`."""
        return [
            r
            for s, r in self.requests
            if s == service and r.method == method and r.url.path == path
        ]

    @staticmethod
    def body(request: httpx.Request) -> Any:
        """A sent request's JSON body."""
        return json.loads(request.content)


def problem(status: int, errors: list[dict[str, Any]], detail: str = "Refused.") -> httpx.Response:
    """An RFC 9457 answer with `errors`."""
    body = {"title": "Refused", "status": status, "detail": detail, "errors": errors}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


@dataclass
class SignedIn:
    """A client of the console with a live session of one role."""

    client: httpx.AsyncClient
    app: FastAPI
    session: ConsoleSession
    cookie: str

    @property
    def deps(self) -> ConsoleDeps:
        """The app's deps."""
        deps: ConsoleDeps = self.app.state.deps
        return deps

    @property
    def csrf(self) -> str:
        """The CSRF token of this session's forms."""
        return csrf_token(SECRET, self.session.session_id)


@asynccontextmanager
async def console_as(
    make_settings: Callable[..., Any],
    fake: FakeServices,
    *,
    role: Role,
    subject: str | None = None,
    language: str = "en",
    **settings_values: Any,
) -> AsyncIterator[SignedIn]:
    """The console app with one signed-in person of `role` (and any other settings)."""
    settings: ConsoleSettings = make_settings(
        ConsoleSettings,
        database_url=None,  # SQLite under the test's tmp_path
        console_secret=SECRET,
        console_cookie_secure=False,
        console_refresh_s=0.05,
        **settings_values,
    )
    await upgrade(settings, "auth")
    app = create_app(settings, migrate=False, transport=httpx.MockTransport(fake.handle))
    deps: ConsoleDeps = app.state.deps
    now = datetime.now(UTC)
    async with deps.auth_sessions.begin() as session:
        made = await create_user(
            session, box=SecretBox(SECRET), login="person", name="A. Person", role=role,
            subject=subject, language=language, now=now,
        )  # fmt: skip
    async with deps.auth_sessions.begin() as session:
        result = await sign_in(
            session, box=SecretBox(SECRET), login="person", password=made.password,
            code=pyotp.TOTP(made.totp_secret).at(now), now=now, ttl=timedelta(hours=1),
            policy=LockoutPolicy(max_failures=5, first_lock_s=60, max_lock_s=600),
        )  # fmt: skip
    assert result.session is not None
    assert result.cookie is not None
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://console", cookies={SESSION_COOKIE: result.cookie}
    ) as client:
        try:
            yield SignedIn(client, app, result.session, result.cookie)
        finally:
            await deps.api.client.aclose()
            await deps.auth_sessions.kw["bind"].dispose()

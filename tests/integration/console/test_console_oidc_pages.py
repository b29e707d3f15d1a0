"""The console's single sign-on routes against the real local OpenID Provider (its discovery
document, keys and token endpoint), on the real auth database: the authorization request
the browser is sent with, and each refusal of the callback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from deploy.local import oidc as local_oidc
from deploy.local.oidc import OidcEndpoints
from services.common.migrations import upgrade
from services.console.app import create_app
from services.console.config import ConsoleSettings
from services.console.http.oidc import CALLBACK_PATH, PENDING_COOKIE

pytestmark = pytest.mark.postgres

BASE = "http://console.test"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcEndpoints]:
    data_dir: Path = tmp_path_factory.mktemp("oidc")
    endpoints = local_oidc.start(data_dir=data_dir, redirect_uris=[f"{BASE}{CALLBACK_PATH}"])
    try:
        yield endpoints
    finally:
        local_oidc.stop(data_dir=data_dir)


@asynccontextmanager
async def _console(
    make_settings: Callable[..., Any], database_url: str | None, **oidc: Any
) -> AsyncIterator[httpx.AsyncClient]:
    settings: ConsoleSettings = make_settings(
        ConsoleSettings,
        database_url=database_url,
        console_secret="oidc-pages-secret",
        console_cookie_secure=False,
        development_mode=False,
        **oidc,
    )
    await upgrade(settings, "auth")
    app = create_app(settings, migrate=False)
    deps = app.state.deps
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        try:
            yield client
        finally:
            await deps.api.client.aclose()
            if deps.oidc is not None:
                await deps.oidc.aclose()
            await deps.auth_sessions.kw["bind"].dispose()


def _configured(provider: OidcEndpoints) -> dict[str, Any]:
    return {
        "console_oidc_issuer": provider.issuer,
        "console_oidc_client_id": provider.client_id,
        "console_oidc_client_secret": SecretStr(provider.client_secret),
        "console_oidc_provider_name": "Riverton PD accounts",
    }


async def test_without_an_issuer_there_is_no_single_sign_on(
    make_settings: Callable[..., Any], database_url: str | None
) -> None:
    async with _console(make_settings, database_url) as client:
        page = await client.get("/signin")
        assert page.status_code == 200
        assert "signin-oidc" not in page.text
        assert (await client.get("/signin/oidc")).status_code == 404
        assert (await client.get(CALLBACK_PATH, params={"code": "x"})).status_code == 404


async def test_the_browser_goes_to_the_provider_with_pkce_state_and_nonce(
    make_settings: Callable[..., Any], database_url: str | None, provider: OidcEndpoints
) -> None:
    async with _console(make_settings, database_url, **_configured(provider)) as client:
        page = await client.get("/signin", params={"next": "/alerts/42"})
        assert "Sign in with Riverton PD accounts" in page.text
        assert 'href="/signin/oidc?next=/alerts/42"' in page.text
        started = await client.get("/signin/oidc", params={"next": "/alerts/42"})
        assert started.status_code == 303
        location = urlsplit(started.headers["location"])
        assert f"{location.scheme}://{location.netloc}" == provider.issuer
        query = {k: v[0] for k, v in parse_qs(location.query).items()}
        assert query["response_type"] == "code"
        assert query["client_id"] == provider.client_id
        assert query["scope"] == "openid"
        assert query["redirect_uri"] == f"{BASE}{CALLBACK_PATH}"
        assert query["code_challenge_method"] == "S256"
        assert len(query["code_challenge"]) == 43  # base64url of a SHA-256
        assert len(query["state"]) >= 32
        assert len(query["nonce"]) >= 32
        assert query["state"] != query["nonce"]
        cookie = started.headers["set-cookie"]
        assert cookie.startswith(f"{PENDING_COOKIE}=")
        for attribute in ("HttpOnly", "Path=/signin/oidc", "SameSite=lax"):
            assert attribute in cookie, cookie
        # Neither the state nor the verifier can be read from the cookie.
        assert query["state"] not in cookie
        # The provider knows the request: its login page answers for it.
        async with httpx.AsyncClient() as browser:
            login = await browser.get(started.headers["location"], follow_redirects=True)
        assert login.status_code == 200
        assert 'name="username"' in login.text


async def test_each_failed_callback_check_is_refused_and_spends_the_pending_sign_in(
    make_settings: Callable[..., Any], database_url: str | None, provider: OidcEndpoints
) -> None:
    async with _console(make_settings, database_url, **_configured(provider)) as client:

        async def begin() -> str:
            started = await client.get("/signin/oidc")
            return parse_qs(urlsplit(started.headers["location"]).query)["state"][0]

        # No pending sign-in in this browser at all.
        missing = await client.get(CALLBACK_PATH, params={"code": "c", "state": "s"})
        assert missing.status_code == 400
        assert "Sign-in expired" in missing.text
        # The person cancelled at the provider.
        state = await begin()
        cancelled = await client.get(
            CALLBACK_PATH, params={"error": "access_denied", "state": state}
        )
        assert cancelled.status_code == 400
        assert "Sign-in cancelled" in cancelled.text
        assert f'{PENDING_COOKIE}=""' in cancelled.headers["set-cookie"]  # spent
        # Another sign-in's state.
        await begin()
        forged = await client.get(CALLBACK_PATH, params={"code": "c", "state": "not-this-one"})
        assert forged.status_code == 400
        assert "does not belong to the sign-in this browser started" in forged.text
        # The right state but a code the provider never issued: its token endpoint refuses.
        state = await begin()
        bogus = await client.get(CALLBACK_PATH, params={"code": "made-up", "state": state})
        assert bogus.status_code == 400
        assert "could not be verified" in bogus.text
        assert "aviso_session" not in bogus.headers.get("set-cookie", "")

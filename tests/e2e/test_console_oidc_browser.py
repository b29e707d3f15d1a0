"""Single sign-on in a real browser (Debian's Chromium, driven by Playwright) through a real
OpenID Provider: zitadel/oidc's example OP built by deploy/local/oidc.py, on
http://localhost:PORT (another site than the console on http://127.0.0.1:PORT, as in
production), with the console as a process on the real PostgreSQL.

A person whose identity an admin linked signs in at the provider's own login page and
lands on the console signed in as the linked account; a tampered state is refused (and
the real answer cannot be replayed after it); an identity nobody linked gets the refusal
page naming the subject to link; a disabled account is refused. Every refusal is audited.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from playwright.async_api import Browser, Page, async_playwright
from sqlalchemy import select

from deploy.local import oidc as local_oidc
from deploy.local.common import free_port
from deploy.local.oidc import OidcEndpoints, OidcUser
from services.common.auth import Role, console_sessions
from services.console.accounts import disable_user, link_identity
from services.console.http.oidc import CALLBACK_PATH
from tests.e2e.console_browser_support import (
    CHROMIUM,
    CONSOLE_SECRET,
    assert_accessible,
    auth_sessions,
    enrol,
    new_page,
    screenshot,
)
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

LINKED = OidcUser("idp-e2e-spoc", "spoc@pd.test", secrets.token_urlsafe(12), "A.", "Reyes")
STRANGER = OidcUser("idp-e2e-stranger", "stranger@pd.test", secrets.token_urlsafe(12))
PROVIDER_NAME = "Riverton PD accounts"


def _console(
    database_url: str, log_dir: Path, provider: OidcEndpoints, port: int
) -> ServiceProcess:
    env = {
        "DATABASE_URL": database_url,
        "AVISO_DATABASE_URL": database_url,
        "AVISO_VAR_DIR": str(log_dir.parent / "var"),
        "AVISO_CONSOLE_SECRET": CONSOLE_SECRET,
        "AVISO_CONSOLE_COOKIE_SECURE": "false",  # plain http on 127.0.0.1
        **provider.env(),
        "AVISO_CONSOLE_OIDC_PROVIDER_NAME": PROVIDER_NAME,
    }
    return ServiceProcess("console", env, log_dir, port=port)


def _chromium_installed() -> bool:
    return Path(CHROMIUM).exists()


async def test_single_sign_on_through_a_real_provider_in_chromium(
    pg_database: str, tmp_path: Path
) -> None:
    if not _chromium_installed():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    console_port = free_port()
    provider = await asyncio.to_thread(
        local_oidc.start,
        data_dir=tmp_path / "oidc",
        redirect_uris=[f"http://127.0.0.1:{console_port}{CALLBACK_PATH}"],
        users=(LINKED, STRANGER),
    )
    console = _console(pg_database, tmp_path / "logs", provider, console_port)
    try:
        await asyncio.to_thread(console.start)
        async with auth_sessions(pg_database, tmp_path / "var") as sessions:
            accounts = await enrol(
                sessions, {"spoc": ("Assistant Chief A. Reyes", Role.CONTACT, None, "en")}
            )
            async with sessions.begin() as session:
                await link_identity(
                    session,
                    login="spoc",
                    issuer=provider.issuer,
                    subject=LINKED.subject,
                    now=datetime.now(UTC),
                )
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
                )
                try:
                    await _linked_person_signs_in(
                        console.url, browser, accounts["spoc"].user_id, sessions
                    )
                    await _tampered_state_is_refused(console.url, browser)
                    await _unknown_identity_is_refused(console.url, browser)
                    async with sessions.begin() as session:
                        await disable_user(session, login="spoc", now=datetime.now(UTC))
                    refused = await _sign_in_at_provider(console.url, browser, LINKED)
                    assert refused[0] == 403
                    await refused[1].context.close()
                finally:
                    await browser.close()
        reasons = [
            r.get("reason")
            for r in console.log_records()
            if r.get("event") == "console.sign_in_refused" and r.get("method") == "oidc"
        ]
        assert reasons == ["state", "pending", "unknown_identity", "disabled"], reasons
        signed_in = [r for r in console.log_records() if r.get("event") == "console.signed_in"]
        assert [r.get("method") for r in signed_in] == ["oidc"]
    finally:
        await asyncio.to_thread(console.terminate, 15.0)
        await asyncio.to_thread(local_oidc.stop, data_dir=tmp_path / "oidc")


async def _at_provider_login(page: Page, url: str) -> None:
    """From the console's sign-in page to the provider's own login form."""
    await page.goto(f"{url}/account")
    assert "/signin" in page.url
    button = page.locator("#signin-oidc")
    assert (await button.inner_text()).strip() == f"Sign in with {PROVIDER_NAME}"
    await button.click()
    await page.wait_for_url(re.compile(r"^http://localhost:\d+/login/username"))


async def _submit_provider_login(page: Page, person: OidcUser) -> None:
    await page.fill("#username", person.username)
    await page.fill("#password", person.password)
    await page.click("button[type=submit]")


async def _sign_in_at_provider(url: str, browser: Browser, person: OidcUser) -> tuple[int, Page]:
    """Sign in at the provider as `person`; the status of the console's callback and the page."""
    page = await new_page(browser)
    await _at_provider_login(page, url)
    async with page.expect_response(lambda r: CALLBACK_PATH in r.url) as answer:
        await _submit_provider_login(page, person)
    await page.wait_for_load_state("domcontentloaded")
    return (await answer.value).status, page


async def _session_cookie(page: Page) -> dict[str, Any] | None:
    found = [c for c in await page.context.cookies() if c["name"] == "aviso_session"]
    return dict(found[0]) if found else None


async def _linked_person_signs_in(url: str, browser: Browser, user_id: str, sessions: Any) -> None:
    page = await new_page(browser)
    await page.goto(f"{url}/account")
    await screenshot(page, "sso-1-signin")
    await assert_accessible(page, "sign-in page with single sign-on")
    await page.context.close()

    status, page = await _sign_in_at_provider(url, browser, LINKED)
    assert status == 200
    # The console's own page moves on to the wanted page, which the session cookie opens.
    await page.wait_for_url(f"{url}/account")
    assert "Assistant Chief A. Reyes" in await page.locator("main").inner_text()
    cookie = await _session_cookie(page)
    assert cookie is not None
    assert cookie["sameSite"] == "Strict"
    assert cookie["httpOnly"]
    assert not [c for c in await page.context.cookies() if c["name"] == "aviso_oidc"]
    async with sessions.begin() as session:
        live = (
            await session.execute(
                select(console_sessions.c.id).where(
                    console_sessions.c.user_id == user_id, console_sessions.c.revoked_at.is_(None)
                )
            )
        ).all()
    assert len(live) == 1
    await screenshot(page, "sso-2-signed-in")
    await page.context.close()


async def _tampered_state_is_refused(url: str, browser: Browser) -> None:
    page = await new_page(browser)
    await _at_provider_login(page, url)
    # The provider's answer, held back: its login form posted from this browser's own
    # context (same cookies), following the provider's redirects up to the console.
    form = {
        "id": await page.get_attribute("input[name=id]", "value") or "",
        "username": LINKED.username,
        "password": LINKED.password,
    }
    step = await page.request.post(urljoin(page.url, "/login/username"), form=form, max_redirects=0)
    while step.status in (302, 303) and CALLBACK_PATH not in step.headers["location"]:
        step = await page.request.get(urljoin(page.url, step.headers["location"]), max_redirects=0)
    assert CALLBACK_PATH in step.headers.get("location", ""), step.status
    original = step.headers["location"]
    assert "code=" in original
    tampered = re.sub(r"state=[^&]+", "state=forged-by-someone-else", original)
    response = await page.goto(tampered)
    assert response is not None
    assert response.status == 400
    assert await page.locator("#oidc-refused").is_visible()
    assert await _session_cookie(page) is None
    await screenshot(page, "sso-3-refused-state")
    # The refusal spent the pending sign-in: the genuine answer is no good any more.
    replay = await page.goto(original)
    assert replay is not None
    assert replay.status == 400
    assert await _session_cookie(page) is None
    await page.context.close()


async def _unknown_identity_is_refused(url: str, browser: Browser) -> None:
    status, page = await _sign_in_at_provider(url, browser, STRANGER)
    assert status == 403
    assert "No console account for this identity" in await page.locator("h1").inner_text()
    assert (await page.locator("#oidc-subject").inner_text()).strip() == STRANGER.subject
    assert await _session_cookie(page) is None
    await screenshot(page, "sso-4-unknown-identity")
    await assert_accessible(page, "single sign-on refusal")
    await page.context.close()

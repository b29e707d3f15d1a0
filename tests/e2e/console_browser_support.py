"""What the console's browser test needs: the console process, accounts, a signed-in page,
screenshots under var/screenshots/, and axe-core (vendored) run on a page."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
from playwright.async_api import Browser, Page

from services.common.auth import Role
from services.common.db import make_engine, make_session_factory
from services.common.migrations import upgrade
from services.console.accounts import Enrolment, SecretBox, create_user
from services.console.config import ConsoleSettings
from tests.support.processes import ROOT

__all__ = [
    "CHROMIUM",
    "CONSOLE_SECRET",
    "Account",
    "assert_accessible",
    "auth_sessions",
    "enrol",
    "new_page",
    "screenshot",
    "sign_in",
]

CHROMIUM = "/usr/bin/chromium"
CONSOLE_SECRET = "e2e-console-secret"
SCREENSHOTS = ROOT / "var" / "screenshots"
_AXE_DIR = Path(__file__).parent / "vendor" / "axe-core"
_AXE_SHA256 = "880970c081707360e64f34cea25ff91892f5bc95675b0776925b9709dd8a68bb"


@dataclass(frozen=True)
class Account:
    """A console user of the story and what they sign in with."""

    login: str
    password: str
    totp_secret: str
    user_id: str

    def code(self, *, ahead: int = 0) -> str:
        """The current TOTP code, or the one `ahead` steps later (a second sign-in soon)."""
        return pyotp.TOTP(self.totp_secret).at(time.time() + 30 * ahead)


@asynccontextmanager
async def auth_sessions(database_url: str, var_dir: Path) -> AsyncIterator[Any]:
    """A session factory on the auth schema of the story's database."""
    settings = ConsoleSettings(database_url=database_url, var_dir=var_dir)
    await upgrade(settings, "auth")
    engine = make_engine(settings, "auth")
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()


async def enrol(
    sessions: Any, wanted: dict[str, tuple[str, Role, str | None, str]]
) -> dict[str, Account]:
    """Create the console accounts {key: (name, role, subject, language)}."""
    box = SecretBox(CONSOLE_SECRET)
    accounts: dict[str, Account] = {}
    async with sessions.begin() as session:
        for login, (name, role, subject, language) in wanted.items():
            made: Enrolment = await create_user(
                session,
                box=box,
                login=login,
                name=name,
                role=role,
                subject=subject,
                language=language,
                now=datetime.now(UTC),
            )
            accounts[login] = Account(login, made.password, made.totp_secret, made.user.id)
    return accounts


async def sign_in(
    page: Page, account: Account, *, password: str | None = None, code: str | None = None
) -> None:
    """Fill and submit the sign-in form the page is on."""
    await page.fill("#login", account.login)
    await page.fill("#password", password if password is not None else account.password)
    await page.fill("#code", code if code is not None else account.code())
    await page.click("button[type=submit]")
    await page.wait_for_load_state("domcontentloaded")


async def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG under var/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


def _axe_source() -> str:
    source = (_AXE_DIR / "axe.min.js").read_bytes()
    assert hashlib.sha256(source).hexdigest() == _AXE_SHA256, "vendored axe-core was changed"
    return source.decode("utf-8")


async def assert_accessible(page: Page, name: str) -> None:
    """axe-core on the page: no serious or critical violation."""
    await page.add_script_tag(content=_axe_source())
    violations: list[dict[str, Any]] = await page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }"""
    )
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not bad, f"axe on {name}: {bad}"


async def new_page(browser: Browser, *, phone: bool = False) -> Page:
    """A fresh browser context (its own cookies); a 360x740 phone when `phone`."""
    context = await browser.new_context(
        viewport={"width": 360, "height": 740} if phone else {"width": 1280, "height": 900},
        # Lets the test inject axe-core despite the console's strict CSP (script-src 'self').
        bypass_csp=True,
        locale="en-US",
    )
    return await context.new_page()

"""The console in a real browser (Debian's Chromium, driven by Playwright) against the real
stack: Kafka, PostgreSQL, intake, router and rumor_control as processes, and the console.

The SPOC, on a 360x740 phone viewport, follows the console link of the delivered
notification, signs in with password and TOTP, reads the restricted detail (intake audits
it) and acknowledges; an officer records three reports that become one rumor, shown as one
cluster on the ledger with its suggestion; vetter A assesses it and may not approve their
own draft; vetter B signs off and approves; ops reads the board and the timeline, replays a
dead letter to its topic and reads the audit chain's verification; the admin creates an
account that signs in with what the page showed once, then disables it. The SPOC
signs in and acknowledges with the keyboard only; the SPOC's staff record a notice taken
by phone and its alert appears in the SPOC's open inbox without a reload (server-sent
events); vetter A switches the console from Spanish to English; vetter B reads the
receipts per liaison and retracts; the admin reviews a directory diff, sees router's
refusal next to the text, and saves. Also: wrong
password or code refused, a forged form refused, an expired and a revoked session, and a
vetter and a liaison never see restricted detail. axe-core runs on every main page and a
screenshot of each is saved under var/screenshots/.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright
from sqlalchemy import update

from deploy.local.common import free_port
from services.common.auth import Role, console_sessions
from services.console.accounts import revoke_user_sessions
from services.demo import _reports as demo_reports
from tests.e2e.console_browser_ops_admin import (
    admin_manages_users,
    ops_replays_a_dead_letter_and_verifies_the_audit_chain,
)
from tests.e2e.console_browser_steps import (
    PHONE_AREA,
    admin_reviews_the_directory,
    keyboard_sign_in,
    spanish,
    staff_record_a_phone_notice,
    switch_language,
    tab_to,
    vetter_retracts,
)
from tests.e2e.console_browser_support import (
    CHROMIUM,
    CONSOLE_SECRET,
    Account,
    assert_accessible,
    auth_sessions,
    enrol,
    new_page,
    screenshot,
    sign_in,
)
from tests.e2e.e2e_support import (
    System,
    running_system,
    spoc_alert,
    submit_notice,
    wait_until,
)
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(300)]

RESTRICTED_NAME = "Esteban Quiroga"


def _console(system: System, database_url: str, log_dir: Path, port: int) -> ServiceProcess:
    return ServiceProcess(
        "console",
        {
            "DATABASE_URL": database_url,
            "AVISO_DATABASE_URL": database_url,
            "AVISO_VAR_DIR": str(log_dir.parent / "var"),
            "AVISO_CONSOLE_SECRET": CONSOLE_SECRET,
            "AVISO_CONSOLE_COOKIE_SECURE": "false",  # plain http on 127.0.0.1
            "AVISO_CONSOLE_INTAKE_URL": system.intake.url,
            "AVISO_CONSOLE_ROUTER_URL": system.router_url,
            "AVISO_CONSOLE_RUMOR_CONTROL_URL": system.rumor_url,
            "AVISO_CONSOLE_REFRESH_S": "2",
        },
        log_dir,
        port=port,
    )


def _chromium_installed() -> bool:
    return Path(CHROMIUM).exists()


async def test_the_story_through_the_console_in_chromium(
    pg_database: str, kafka_bootstrap: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    if not _chromium_installed():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    # The console's address is known before the services start: their notifications link to it.
    console_port = free_port()
    async with (
        running_system(
            tmp_path,
            kafka_bootstrap=kafka_bootstrap,
            database_url=pg_database,
            unique=unique,
            spoc_wait_s=120,
            # Revocation reaches the services at once (no token cache), so the test can
            # check that an ended console session's token is refused by the services too.
            extra_env={
                "AVISO_AUTH_CACHE_TTL_S": "0",
                "AVISO_CONSOLE_BASE_URL": f"http://127.0.0.1:{console_port}",
            },
        ) as system,
        auth_sessions(pg_database, tmp_path / "var") as sessions,
    ):
        console = _console(system, pg_database, tmp_path / "logs", console_port)
        await asyncio.to_thread(console.start)
        try:
            accounts = await enrol(
                sessions,
                {
                    "spoc": ("Assistant Chief A. Reyes", Role.CONTACT, system.cast.spoc_id, "en"),
                    "vetter-a": ("Sgt. P. Morales", Role.VETTER, None, "es"),
                    "vetter-b": ("Lt. R. Daniels", Role.VETTER, None, "en"),
                    "officer": ("Ofc. L. Ortiz", Role.LIAISON, None, "es"),
                    "ops": ("Operations desk", Role.OPS, None, "en"),
                    "staff": ("SPOC staff: J. Lund", Role.FIELD_OFFICE, "fo-riverton", "en"),
                    "admin": ("Directory admin", Role.ADMIN, None, "en"),
                },
            )
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
                )
                try:
                    ops_topic = (kafka_bootstrap, unique("aviso.test.console-replay"))
                    await _story(system, console.url, browser, accounts, sessions, ops_topic)
                finally:
                    await browser.close()
        finally:
            await asyncio.to_thread(console.terminate, 15.0)


async def _story(
    system: System,
    url: str,
    browser: Browser,
    accounts: dict[str, Account],
    sessions: Any,
    ops_topic: tuple[str, str],
) -> None:
    notice_body, response = await submit_notice(system, correlation_id="console-e2e")
    assert response.status_code == 201, response.text
    notice_id = response.json()["id"]
    hook, mail = await spoc_alert(system, notice_id, timeout=60)
    alert_id = hook["payload"]["alert_id"]
    # Every notification links to the console's alert page (the one-click link stays).
    link = hook["payload"]["console_url"]
    assert link == f"{url}/alerts/{alert_id}"
    assert link in mail["text"]
    assert hook["payload"]["ack_url"]

    inbox = await _spoc_acknowledges(system, url, browser, accounts["spoc"], link, notice_id)
    await _phone_notice_reaches_the_live_inbox(url, browser, accounts["staff"], inbox)
    rumor_id = await _officer_reports(url, browser, accounts["officer"], alert_id, notice_id)
    bulletin_id = await _vetter_a_assesses(url, browser, accounts["vetter-a"], rumor_id, alert_id)
    await _vetter_b_approves(url, browser, accounts["vetter-b"], bulletin_id)
    await _ops_and_sessions(system, url, browser, accounts, sessions, alert_id, ops_topic)
    await admin_reviews_the_directory(url, browser, accounts["admin"])
    await admin_manages_users(url, browser, accounts["admin"])
    assert notice_body["restricted"]["names"] == [RESTRICTED_NAME]


async def _spoc_acknowledges(
    system: System, url: str, browser: Browser, spoc: Account, link: str, notice_id: str
) -> Page:
    page = await new_page(browser, phone=True)
    # The link of the delivered notification: not signed in yet, so the sign-in page first.
    await page.goto(link)
    alert_id = link.rsplit("/", 1)[1]
    assert "/signin" in page.url
    await screenshot(page, "01-signin-phone")
    await assert_accessible(page, "sign-in")
    await keyboard_sign_in(page, spoc)  # Tab, typing and Enter only
    assert page.url == f"{url}/alerts/{alert_id}"
    restricted = page.locator("#restricted")
    assert RESTRICTED_NAME in await restricted.inner_text()
    # Usable at 360 px: nothing wider than the screen.
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await screenshot(page, "02-alert-spoc-phone")
    await assert_accessible(page, "alert page (SPOC)")
    # Intake audited the read, as this person.
    await wait_until(
        "intake's restricted-read audit log line",
        lambda: [
            r
            for r in system.intake.log_records()
            if r.get("event") == "notice.restricted_read" and r.get("notice_id") == notice_id
        ],
        timeout=15,
    )
    await tab_to(page, "#comment")
    await page.keyboard.type("Leído; coordino con el distrito 4.")
    await tab_to(page, "form[action$='/ack'] button[type=submit]")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    await page.wait_for_selector("#acknowledged")
    assert "acknowledged=1" in page.url
    assert "acknowledged" in (await page.locator(".timeline").inner_text())
    await screenshot(page, "03-alert-acknowledged-phone")
    await page.goto(f"{url}/alerts")
    assert "Acknowledged" in await page.locator("#inbox").inner_text()
    await assert_accessible(page, "alert inbox")
    return page  # left open: the next step's alert must appear in it without a reload


async def _phone_notice_reaches_the_live_inbox(
    url: str, browser: Browser, staff: Account, inbox: Page
) -> None:
    await inbox.wait_for_function(
        "document.getElementById('inbox').dataset.live === 'events'", timeout=15_000
    )
    # Survives only if the page is never reloaded.
    await inbox.evaluate("window.__sameDocument = true")
    await staff_record_a_phone_notice(url, browser, staff)
    await inbox.wait_for_function(
        "s => document.getElementById('inbox').innerText.includes(s)",
        arg=PHONE_AREA,
        timeout=60_000,
    )
    assert await inbox.evaluate("window.__sameDocument === true")
    await screenshot(inbox, "04-inbox-phone")
    await inbox.context.close()


async def _officer_reports(
    url: str, browser: Browser, officer: Account, alert_id: str, notice_id: str
) -> str:
    page = await new_page(browser, phone=True)
    await page.goto(f"{url}/rumors/new")
    await sign_in(page, officer)
    assert page.url == f"{url}/rumors/new"
    sources = ("phone_line", "la_movida", "liaison")
    rumor_ids = []
    for report, source in zip(demo_reports(datetime.now(UTC)), sources, strict=True):
        await page.fill("#claim", report["claim"])
        await page.fill("#place", report["place"])
        await page.check(f"input[name=source][value={source}]")
        await page.check(f"input[name=language][value={report['language']}]")
        await page.click("form[action='/rumors'] button[type=submit]")
        filed = await page.locator("#filed").inner_text()
        rumor_ids.append(re.search(r"\(([0-9a-f-]{36})\)", filed).group(1))  # type: ignore[union-attr]
    assert len(set(rumor_ids)) == 1, rumor_ids
    assert "3" in filed
    await screenshot(page, "05-report-rumor-phone")
    await assert_accessible(page, "rumor report form")
    await _never_sees_restricted(page, url, alert_id, notice_id)
    await page.context.close()
    return rumor_ids[0]


async def _never_sees_restricted(page: Page, url: str, alert_id: str, notice_id: str) -> None:
    for path in (f"/alerts/{alert_id}", f"/notices/{notice_id}", "/alerts"):
        response = await page.goto(f"{url}{path}")
        assert response is not None
        assert response.status == 403, (path, response.status)
        assert RESTRICTED_NAME not in await page.content()


async def _vetter_a_assesses(
    url: str, browser: Browser, vetter: Account, rumor_id: str, alert_id: str
) -> str:
    page = await new_page(browser)
    await page.goto(f"{url}/rumors")
    await sign_in(page, vetter)
    # Vetter A chose Spanish; the switch in the header turns the console English.
    assert await page.get_attribute("html", "lang") == "es"
    assert (await page.locator("h1").inner_text()).strip() == spanish("rumors.title")
    await switch_language(page, to="en")
    assert (await page.locator("h1").inner_text()).strip() == "Rumor ledger"
    # The three reports are one rumor, in the cluster of their place, with a suggestion.
    cluster = await page.locator("section.cluster").first.inner_text()
    assert "1 rumor(s), 3 report(s)" in cluster, cluster
    assert "Suggested:" in cluster, cluster
    await screenshot(page, "06-rumor-ledger")
    await assert_accessible(page, "rumor ledger")
    await page.goto(f"{url}/rumors/{rumor_id}")
    assert (await page.locator("#report-count").inner_text()).strip() == "3"
    await page.click("form[action$='/assess'] button[type=submit]")
    await page.wait_for_url(re.compile(r".*/bulletins/[0-9a-f-]{36}$"))
    bulletin_id = page.url.rsplit("/", 1)[1]
    # Vetter A edits the English headline; the guardrails run again.
    await page.click("section[lang=en] details summary")
    headline = page.locator("#en-headline")
    await headline.fill((await headline.input_value()) + " (actualizado)")
    await page.click("form[action$='/edit/en'] button[type=submit]")
    await page.wait_for_load_state("domcontentloaded")
    assert "(actualizado)" in await page.locator("section[lang=en] h3").inner_text()
    await screenshot(page, "07-bulletin-vetter-a")
    await assert_accessible(page, "bulletin page")
    # The two-person rule: the author's own approval is refused, and the page says why.
    await page.click("#approve")
    assert await page.locator("#refusal").is_visible()
    assert await page.locator("#bulletin-state").inner_text() != "published"
    await _never_sees_restricted(page, url, alert_id, "00000000-0000-4000-8000-000000000000")
    await page.context.close()
    return bulletin_id


async def _vetter_b_approves(url: str, browser: Browser, vetter: Account, bulletin_id: str) -> None:
    page = await new_page(browser)
    await page.goto(f"{url}/bulletins")
    await sign_in(page, vetter)
    await screenshot(page, "08-vetting-queue")
    await assert_accessible(page, "vetting queue")
    await page.goto(f"{url}/bulletins/{bulletin_id}")
    await page.click("#signoff")
    await page.wait_for_load_state("domcontentloaded")
    signed = await page.locator("#signed-off").inner_text()
    assert "en:" in signed, signed
    assert "es:" in signed, signed
    await page.click("#approve")
    await page.wait_for_load_state("domcontentloaded")
    assert (await page.locator("#bulletin-state").inner_text()).strip() == "published"
    await screenshot(page, "09-bulletin-published")
    await vetter_retracts(page, bulletin_id)
    await page.context.close()


async def _ops_and_sessions(
    system: System,
    url: str,
    browser: Browser,
    accounts: dict[str, Account],
    sessions: Any,
    alert_id: str,
    ops_topic: tuple[str, str],
) -> None:
    ops = accounts["ops"]
    page = await new_page(browser)
    await page.goto(f"{url}/ops")
    # A wrong password, then a wrong code: refused, and no session cookie.
    await sign_in(page, ops, password="not the password at all")
    assert "/signin" in page.url
    assert await page.locator("#signin-error").is_visible()
    await sign_in(page, ops, code="000000" if ops.code() != "000000" else "111111")
    assert await page.locator("#signin-error").is_visible()
    assert not [c for c in await page.context.cookies() if c["name"] == "aviso_session"]
    await sign_in(page, ops)
    assert page.url == f"{url}/ops"
    assert (await page.locator("#health-h + ul").inner_text()).count("ready") == 3
    # The phone notice's alert is open: its next escalation step is listed as due.
    assert PHONE_AREA in await page.locator("#escalations-due").inner_text()
    await screenshot(page, "10-ops-board")
    await assert_accessible(page, "ops board")
    await ops_replays_a_dead_letter_and_verifies_the_audit_chain(
        page, url, bootstrap=ops_topic[0], topic=ops_topic[1]
    )
    await page.goto(f"{url}/alerts/{alert_id}")
    assert "acknowledged" in await page.locator(".timeline").inner_text()
    assert RESTRICTED_NAME not in await page.content()
    await screenshot(page, "11-alert-timeline-ops")

    # A forged form (wrong CSRF token) is refused and changes nothing.
    await page.evaluate(
        "document.querySelector(\"form[action='/signout'] input[name=csrf]\").value = 'forged'"
    )
    await page.click("form[action='/signout'] button")
    assert await page.title() == "Form expired · Aviso"
    await page.goto(f"{url}/ops")
    assert page.url == f"{url}/ops"  # still signed in

    # An expired session: the console sends the browser to sign in, and the services
    # refuse its token from then on.
    cookie = next(c["value"] for c in await page.context.cookies() if c["name"] == "aviso_session")
    async with sessions.begin() as session:
        await session.execute(
            update(console_sessions)
            .where(console_sessions.c.user_id == ops.user_id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    await page.goto(f"{url}/ops")
    assert "/signin" in page.url
    async with httpx.AsyncClient() as client:
        refused = await client.get(
            f"{system.router_url}/v1/alerts", headers={"Authorization": f"Bearer {cookie}"}
        )
    assert refused.status_code == 401
    await page.context.close()

    # A revoked session (an admin ends the officer's sessions): back to sign-in.
    officer_page = await new_page(browser)
    await officer_page.goto(f"{url}/rumors/new")
    await sign_in(officer_page, accounts["officer"], code=accounts["officer"].code(ahead=1))
    assert officer_page.url == f"{url}/rumors/new"
    async with sessions.begin() as session:
        await revoke_user_sessions(
            session, user_id=accounts["officer"].user_id, now=datetime.now(UTC)
        )
    await officer_page.goto(f"{url}/rumors/new")
    assert "/signin" in officer_page.url
    await officer_page.context.close()

"""Steps of the console's browser story for operations and administration: the dead
letters with replay, the audit chain's verification, and the admin's users and roles.
Each step asserts through the page what a person would see."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pyotp
from playwright.async_api import Browser, Page

from schemas.dlq import DeadLettered, b64encode
from schemas.topics import DLQ
from tests.e2e.console_browser_support import (
    Account,
    assert_accessible,
    new_page,
    screenshot,
)
from tests.support.kafka_io import produce_raw, read_topic

__all__ = [
    "admin_manages_users",
    "ops_replays_a_dead_letter_and_verifies_the_audit_chain",
]


async def _dead_letter(bootstrap: str, topic: str) -> DeadLettered:
    """A letter on the DLQ as a consumer that gave up would leave it."""
    letter = DeadLettered(
        dead_letter_id=uuid.uuid4(),
        original_topic=topic,
        original_partition=0,
        original_offset=3,
        original_key=b64encode(b"e2e-key"),
        original_headers=(("ce_id", f"e2e-{uuid.uuid4()}"),),
        original_value=b64encode(b'{"e2e": true}'),
        error_type="RuntimeError",
        error_message="downstream not ready",
        attempts=3,
        consumer_group="e2e-console-ops",
        failed_at=datetime.now(UTC),
    )
    key = str(letter.dead_letter_id).encode()
    await produce_raw(bootstrap, DLQ, [(key, letter.model_dump_json().encode(), [])])
    return letter


async def _fits_a_phone(page: Page) -> None:
    """Nothing on the page is wider than a 360 px screen (then back to the desktop size)."""
    await page.set_viewport_size({"width": 360, "height": 740})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await page.set_viewport_size({"width": 1280, "height": 900})


async def ops_replays_a_dead_letter_and_verifies_the_audit_chain(
    page: Page, url: str, *, bootstrap: str, topic: str
) -> None:
    """From the board: the dead letters (one replayed to its topic), then the audit check."""
    letter = await _dead_letter(bootstrap, topic)
    await page.goto(f"{url}/ops")
    await page.click("a[href='/ops/dead-letters']")
    await page.wait_for_load_state("domcontentloaded")
    box = page.locator(f"input[name=id][value='{letter.dead_letter_id}']")
    await box.check()
    await screenshot(page, "16-dead-letters")
    await assert_accessible(page, "dead letters")
    await _fits_a_phone(page)
    await page.click("#replay")
    await page.wait_for_selector("#replayed")
    records = await read_topic(bootstrap, topic, until=lambda rs: len(rs) >= 1)
    assert [r.value for r in records] == [b'{"e2e": true}']

    await page.goto(f"{url}/ops")
    await page.click("a[href='/ops/audit']")
    await page.wait_for_load_state("domcontentloaded")
    assert "Intact" in await page.locator("#audit-result").inner_text()
    await screenshot(page, "17-audit-chain")
    await assert_accessible(page, "audit chain")
    await _fits_a_phone(page)


async def admin_manages_users(url: str, browser: Browser, admin: Account) -> None:
    """The admin creates an account (shown once), which signs in with it; then disables it."""
    page = await new_page(browser, phone=True)
    await page.goto(f"{url}/admin/users")
    await page.fill("#login", admin.login)
    await page.fill("#password", admin.password)
    await page.fill("#code", admin.code(ahead=1))  # the directory step used this step's code
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{url}/admin/users")
    await page.fill("#login", "radio.desk")
    await page.fill("#name", "La Movida newsroom")
    await page.select_option("#new-role", "liaison")
    await page.check("input[name=language][value=es]")
    await page.click("#create-user")
    await page.wait_for_selector("#enrolled")
    password = (await page.locator("#enrolled-password").inner_text()).strip()
    secret = (await page.locator("#enrolled-secret").inner_text()).strip()
    await assert_accessible(page, "account shown once")

    newcomer = await new_page(browser, phone=True)
    await newcomer.goto(f"{url}/rumors/new")
    await newcomer.fill("#login", "radio.desk")
    await newcomer.fill("#password", password)
    await newcomer.fill("#code", pyotp.TOTP(secret).now())
    await newcomer.click("button[type=submit]")
    await newcomer.wait_for_url(f"{url}/rumors/new")
    assert await newcomer.get_attribute("html", "lang") == "es"

    await page.goto(f"{url}/admin/users")
    assert "radio.desk" in await page.locator("#users").inner_text()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await screenshot(page, "18-admin-users-phone")
    await assert_accessible(page, "users and roles")
    card = page.locator("#user-radio\\.desk")
    await card.locator("summary").click()
    await card.locator("form[action$='/disable'] button").click()
    await page.wait_for_selector("#users-done")
    assert "disabled" in await page.locator("#user-radio\\.desk .user-state").inner_text()
    # Disabling ended the newcomer's session at once.
    await newcomer.goto(f"{url}/rumors/new")
    assert "/signin" in newcomer.url
    await newcomer.context.close()
    await page.context.close()

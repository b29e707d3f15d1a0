"""Further steps of the console's browser story: keyboard-only use, the phone-notice form
and the live inbox, the language switch, read receipts and retraction, and the admin's
directory review. Each step asserts through the page what a person would see."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.async_api import Browser, Page

from services.console.i18n import catalog
from tests.e2e.console_browser_support import (
    Account,
    assert_accessible,
    new_page,
    screenshot,
)

__all__ = [
    "admin_reviews_the_directory",
    "keyboard_sign_in",
    "spanish",
    "staff_record_a_phone_notice",
    "switch_language",
    "tab_to",
    "vetter_retracts",
    "wait_for_receipts",
]

PHONE_AREA = "Southside (by phone)"


async def tab_to(page: Page, selector: str, *, limit: int = 40) -> None:
    """Press Tab until the element matching `selector` has the focus (keyboard only)."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


async def keyboard_sign_in(page: Page, account: Account) -> None:
    """Sign in with Tab, typing and Enter only: no pointer."""
    await tab_to(page, "#login")
    await page.keyboard.type(account.login)
    await tab_to(page, "#password")
    await page.keyboard.type(account.password)
    await tab_to(page, "#code")
    await page.keyboard.type(account.code())
    async with page.expect_navigation():
        await page.keyboard.press("Enter")


async def staff_record_a_phone_notice(url: str, browser: Browser, staff: Account) -> str:
    """The SPOC's staff type in a notice taken by phone; intake's refusal shows per field."""
    page = await new_page(browser)
    await page.goto(f"{url}/notices/new")
    await page.fill("#login", staff.login)
    await page.fill("#password", staff.password)
    await page.fill("#code", staff.code())
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{url}/notices/new")
    reference = f"PHONE-{id(page):x}".upper()
    await page.fill("#reference", reference)
    tomorrow = (datetime.now(ZoneInfo("America/Chicago")) + timedelta(days=1)).date()
    await page.fill("#window_start", f"{tomorrow}T09:00")
    await page.fill("#window_end", f"{tomorrow}T13:00")
    await page.fill("#area", PHONE_AREA)
    await page.fill("#summary", "Agents called about a planned operation on the south side.")
    await page.fill("#field_office_name", "Riverton ERO field office")
    await page.fill("#agent_name", "Dana Whitlock")
    # A phone number intake refuses: its message shows next to the field.
    await page.fill("#agent_phone", "call me maybe")
    await page.click("form[action='/notices/new'] button[type=submit]")
    assert await page.locator("#agent_phone-error").is_visible()
    assert await page.get_attribute("#agent_phone", "aria-invalid") == "true"
    await screenshot(page, "12-phone-notice-refused")
    await assert_accessible(page, "phone notice form with errors")
    await page.fill("#agent_phone", "+1 505 555 0199")
    await page.click("form[action='/notices/new'] button[type=submit]")
    recorded = await page.locator("#recorded").inner_text()
    assert reference in recorded, recorded
    notice_id = re.search(r"\(([0-9a-f-]{36})\)", recorded).group(1)  # type: ignore[union-attr]
    await page.context.close()
    return notice_id


async def switch_language(page: Page, *, to: str) -> None:
    """Press the header's language button; the page comes back in `to`."""
    async with page.expect_navigation():
        await page.click(f"form[action='/language'] button[value={to}]")
    assert await page.get_attribute("html", "lang") == to


async def wait_for_receipts(page: Page, *, timeout: float = 60.0) -> None:
    """Reload the published bulletin until rumor_control lists a liaison's delivery."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await page.locator("#receipts tbody tr").count() == 0:
        assert loop.time() < deadline, "no delivery listed on the bulletin page"
        await asyncio.sleep(0.5)
        await page.reload()


async def vetter_retracts(page: Page, bulletin_id: str) -> None:
    """A published bulletin: read receipts per liaison, then retraction."""
    await wait_for_receipts(page)
    assert await page.locator("#receipts").is_visible()
    await screenshot(page, "13-bulletin-receipts")
    await assert_accessible(page, "published bulletin with receipts")
    await page.select_option("#retract-reason", "operation_cancelled")
    await page.click("#retract")
    await page.wait_for_url(re.compile(rf".*/bulletins/{bulletin_id}$"))
    assert (await page.locator("#public-state").inner_text()).strip() == "retracted"
    assert "Cancel" in await page.locator("#versions").inner_text()


async def admin_reviews_the_directory(url: str, browser: Browser, admin: Account) -> None:
    """Edit the YAML, see the diff, get router's refusal next to the text, then save."""
    page = await new_page(browser)
    await page.goto(f"{url}/admin/directory")
    await page.fill("#login", admin.login)
    await page.fill("#password", admin.password)
    await page.fill("#code", admin.code())
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{url}/admin/directory")
    version = (await page.locator("#directory-version").inner_text()).split(" ")[0]
    text = await page.input_value("#text")
    edited = re.sub(r"wait_s: [0-9.]+", "wait_s: 900.0", text, count=1)
    assert edited != text
    await page.fill("#text", edited)
    await page.click("#review")
    await page.wait_for_url(f"{url}/admin/directory/review")
    added = " ".join(await page.locator("#diff .add").all_inner_texts())
    removed = " ".join(await page.locator("#diff .del").all_inner_texts())
    assert "wait_s: 900.0" in added, added
    assert "wait_s" in removed, removed
    await screenshot(page, "14-directory-diff")
    await assert_accessible(page, "directory review")
    # A SPOC nobody in the directory: router refuses, and says where.
    people, designation = edited.split("\nspoc:", 1)
    spoc = re.search(r"person_id: '?([0-9a-f-]{36})", designation)
    assert spoc is not None
    unknown = designation.replace(spoc.group(1), "00000000-0000-4000-8000-00000000dead", 1)
    await page.fill("#text", f"{people}\nspoc:{unknown}")
    await page.click("#save")
    errors = await page.locator("#text-errors").inner_text()
    assert "spoc.person_id" in errors, errors
    await screenshot(page, "15-directory-refused")
    await page.fill("#text", edited)
    await page.click("button[formaction='/admin/directory/review']")
    await page.click("#save")
    await page.wait_for_url(re.compile(r".*/admin/directory\?saved=v\d+$"))
    saved = await page.locator("#saved").inner_text()
    assert f"v{int(version.lstrip('v')) + 1}" in saved, (version, saved)
    await page.context.close()


def spanish(key: str) -> str:
    """A Spanish message of the console's catalog."""
    return catalog("es")[key]

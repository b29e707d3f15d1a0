"""Steps of the console's browser story for operations and administration: the dead
letters with replay, the audit chain's verification, and the admin's users and roles.
Each step asserts through the page what a person would see."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from playwright.async_api import Page

from schemas.dlq import DeadLettered, b64encode
from schemas.topics import DLQ
from tests.e2e.console_browser_support import assert_accessible, screenshot
from tests.support.kafka_io import produce_raw, read_topic

__all__ = ["ops_replays_a_dead_letter_and_verifies_the_audit_chain"]


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
    await screenshot(page, "12-dead-letters")
    await assert_accessible(page, "dead letters")
    await page.click("#replay")
    await page.wait_for_selector("#replayed")
    records = await read_topic(bootstrap, topic, until=lambda rs: len(rs) >= 1)
    assert [r.value for r in records] == [b'{"e2e": true}']

    await page.goto(f"{url}/ops")
    await page.click("a[href='/ops/audit']")
    await page.wait_for_load_state("domcontentloaded")
    assert "Intact" in await page.locator("#audit-result").inner_text()
    await screenshot(page, "13-audit-chain")
    await assert_accessible(page, "audit chain")

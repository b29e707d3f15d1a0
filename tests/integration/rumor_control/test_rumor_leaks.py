"""The leak check against every live notice, not only linked ones (issue 12, item 2).

Real rumor_control on Kafka and PostgreSQL: a notice arrives with a restricted name; a rumor
elsewhere, assessed "Unable to verify" and linked to no notice, gets a draft; a vetter who
types that name into it is blocked and told which span to remove, while ordinary words that
the restricted values share ("back gate", "name", "plate") block nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.integration.rumor_control.rumor_harness import RumorApp, rumor_app_running
from tests.support import infra


@pytest.fixture(scope="module")
async def rc(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, kafka_bootstrap: str
) -> AsyncIterator[RumorApp]:
    database = await infra.fresh_database_async(postgres_url)
    try:
        async with rumor_app_running(
            tmp_path_factory.mktemp("rumor"), database_url=database, kafka_bootstrap=kafka_bootstrap
        ) as running:
            yield running
    finally:
        await infra.drop_database_async(database)


async def _edit(rc: RumorApp, bulletin_id: str, body: str) -> dict[str, Any]:
    response = await rc.client.put(
        f"/v1/bulletins/{bulletin_id}/texts/en", json={"body": body}, headers=rc.auth("vetter_b")
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _leak_hits() -> float:
    return REGISTRY.get_sample_value("aviso_bulletin_leak_hits_total") or 0.0


async def test_an_unlinked_draft_naming_a_live_notices_target_is_blocked(rc: RumorApp) -> None:
    surname = f"Zorvath{uuid.uuid4().hex[:6]}"
    notice = rc.notice(
        area_code="riverside",
        restricted_terms=(
            f"Esteban {surname}",
            "back gate of the school",
            "red pickup, name plate",
        ),
    )
    await rc.produce(notice, source="aviso.intake")
    report = await rc.report(
        claim="Dicen que hay agentes en la escuela", place="Las Palmas", channel="phone_line"
    )
    assessed = await rc.client.post(
        f"/v1/rumors/{report['rumor_id']}/assess",
        json={"assessment": "Unable to verify"},
        headers=rc.auth("vetter_a"),
    )
    assert assessed.status_code == 200, assessed.text
    bulletin_id = assessed.json()["bulletin_id"]
    original = (await rc.bulletin(bulletin_id))["texts"]["en"]["body"]
    assert str(notice.notice_id) not in (await rc.bulletin(bulletin_id))["notice_ids"]

    leaked = original + f"\n\nAgents are looking for Esteban {surname.upper()}."
    before = _leak_hits()
    deadline = time.monotonic() + 45
    findings: list[dict[str, Any]] = []
    while time.monotonic() < deadline:  # until the notice has been consumed
        findings = [
            f
            for f in (await _edit(rc, bulletin_id, leaked))["guardrails"]
            if f["code"] == "leak.restricted_term"
        ]
        if findings:
            break
        await asyncio.sleep(0.5)
    assert len(findings) == 1, findings
    start = leaked.index("Esteban")
    assert f"(characters {start}-{start + 8 + len(surname)})" in findings[0]["detail"]
    assert str(notice.notice_id) not in str(findings)
    assert _leak_hits() > before

    ordinary = original + "\n\nPlease use the back gate of the school. Bring a name or a plate."
    edited = await _edit(rc, bulletin_id, ordinary)
    assert "leak.restricted_term" not in edited["blocked_reasons"], edited["guardrails"]

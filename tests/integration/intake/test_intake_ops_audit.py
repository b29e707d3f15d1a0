"""`GET /v1/ops/audit`: ops read the audit chain's verification result over HTTP."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from services.intake.worker import seal_audit
from tests.integration.intake.intake_support import Intake, notice_body

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def test_ops_read_an_intact_chain_then_the_first_broken_link(intake: Intake) -> None:
    notice_id = (await intake.created(notice_body()))["id"]
    read = await intake.client.get(f"/v1/notices/{notice_id}", headers=intake.auth("contact"))
    assert read.status_code == 200
    await seal_audit(intake.deps)

    response = await intake.client.get("/v1/ops/audit", headers=intake.auth("ops"))
    assert response.status_code == 200, response.text
    intact = response.json()
    assert intact["intact"] is True
    assert intact["entries"] == 2  # notice.created, notice.restricted_read
    assert intact["broken_at"] is None
    # Numbers and hashes only: nothing an entry recorded.
    assert notice_id not in response.text

    async with intake.app.state.runtime.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE audit_log SET action = 'notice.read' WHERE seq = 2"))
    broken = (await intake.client.get("/v1/ops/audit", headers=intake.auth("ops"))).json()
    assert (broken["intact"], broken["broken_at"], broken["entries"]) == (False, 2, 1)
    assert "altered" in broken["problem"]


async def test_only_ops_read_the_verification(intake: Intake) -> None:
    refused = await intake.client.get("/v1/ops/audit", headers=intake.auth("contact"))
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    anonymous = await intake.client.get("/v1/ops/audit")
    assert anonymous.status_code == 401

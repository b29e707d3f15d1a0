"""Expiry after the window plus grace, and the purge of restricted detail after retention."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from services.intake import sweeping
from services.intake.audit import verify_chain
from services.intake.config import IntakeSettings
from services.intake.deps import IntakeDeps
from services.intake.worker import sweep, sweep_step
from tests.integration.intake.intake_support import Intake, notice_body, revision_body, run_intake
from tests.support.kafka_io import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _expire(deps: IntakeDeps, *, now: datetime) -> int:
    return await sweep_step(deps, sweeping.expire_notices, now=now)


async def _purge(deps: IntakeDeps, *, now: datetime) -> int:
    return await sweep_step(deps, sweeping.purge_restricted, now=now)


async def test_expiry_then_purge_keeps_the_record_and_the_audit(intake: Intake) -> None:
    body = notice_body()
    notice_id = (await intake.created(body))["id"]
    open_one = (await intake.created())["id"]
    ctx = intake.deps
    window_end = datetime.fromisoformat(body["window_end"])

    # Not yet: the grace period has not passed.
    assert await _expire(ctx, now=window_end + ctx.expiry_grace - timedelta(seconds=1)) == 0
    expired_at = window_end + ctx.expiry_grace + timedelta(seconds=1)
    assert await _expire(ctx, now=expired_at) == 2

    url = f"/v1/notices/{notice_id}"
    detail = (await intake.client.get(url, headers=intake.auth("ops"))).json()
    assert detail["state"] == "expired"
    late = await intake.client.post(
        f"{url}/update",
        json=revision_body(body, summary="late"),
        headers=intake.auth("field_office"),
    )
    assert late.status_code == 409
    assert late.json()["type"].endswith("/notice-expired")
    assert (await intake.client.get(url, headers=intake.auth("contact"))).json()[
        "restricted"
    ] is not None

    # Retention runs from closing; before it ends nothing is purged.
    assert await _purge(ctx, now=expired_at + ctx.retention - timedelta(seconds=1)) == 0
    report = await sweep(ctx, now=expired_at + ctx.retention)
    assert (report.expired, report.purged) == (0, 2)

    detail = (await intake.client.get(url, headers=intake.auth("contact"))).json()
    assert detail["source"] is None
    assert detail["restricted"] is None
    assert detail["restricted_purged_at"] is not None
    assert detail["summary"] == body["summary"]  # the releasable record remains
    assert len(detail["history"]) == 1
    versions = await intake.rows("notice_versions")
    assert all(version["restricted_sealed"] is None for version in versions)
    actions = [
        entry["action"]
        for entry in await intake.rows("audit_log")
        if entry["notice_id"] == notice_id
    ]
    assert actions[-1] == "notice.restricted_read"
    assert "notice.expired" in actions
    assert "notice.restricted_purged" in actions
    async with ctx.unit_of_work() as uow:
        assert (await verify_chain(uow.session, key=intake.deps.audit_key)).intact
    assert (await intake.client.get(f"/v1/notices/{open_one}", headers=intake.auth("ops"))).json()[
        "state"
    ] == "expired"


async def test_cancelled_notices_are_purged_after_retention_too(intake: Intake) -> None:
    notice_id = (await intake.created())["id"]
    await intake.client.post(
        f"/v1/notices/{notice_id}/cancel",
        json={"reason": "operation_cancelled"},
        headers=intake.auth("field_office"),
    )
    now = datetime.now(UTC)
    ctx = intake.deps
    assert await _expire(ctx, now=now + timedelta(days=400)) == 0  # already closed
    assert await _purge(ctx, now=now + ctx.retention + timedelta(minutes=1)) == 1
    assert await _purge(ctx, now=now + ctx.retention + timedelta(minutes=2)) == 0


async def test_the_sweeper_runs_in_the_service(
    intake_settings: Callable[..., IntakeSettings],
) -> None:
    settings = intake_settings(
        intake_sweep_interval_s=0.2, intake_expiry_grace_s=0.0, intake_restricted_retention_s=0.0
    )
    async with run_intake(settings) as intake:
        now = datetime.now(UTC)
        # A phone call recorded after the fact: its window has already ended.
        past = notice_body(
            received_via="phone",
            window_start=(now - timedelta(hours=3)).isoformat(),
            window_end=(now - timedelta(hours=1)).isoformat(),
        )
        notice_id = (await intake.created(past))["id"]

        async def expired() -> bool:
            detail = (
                await intake.client.get(f"/v1/notices/{notice_id}", headers=intake.auth("ops"))
            ).json()
            return bool(detail["state"] == "expired")

        await wait_for(expired, timeout=15)
        await wait_for(lambda: _no_sealed(intake), timeout=15)


async def _no_sealed(intake: Intake) -> bool:
    return all(row["restricted_sealed"] is None for row in await intake.rows("notice_versions"))

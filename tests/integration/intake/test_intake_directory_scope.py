"""Who reads restricted detail: a contact in router's directory, or one the admin granted.

Router and intake run for real on Kafka and PostgreSQL. The admin replaces the directory
through router's API; router announces its people (ids only) on `aviso.directory.v1`
through its outbox; intake's consumer records them. Then three contact tokens read the
same notice: the SPOC (in the directory), a stranger (in no directory) and the same
stranger's subject with the admin's grant.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from deploy.local.kafka import ensure_topics
from schemas.topics import DIRECTORY
from services.common.auth import Role
from services.common.db import make_engine
from services.intake.config import IntakeSettings
from services.intake.tables import directory_people
from tests.integration.api_apps import router_running
from tests.integration.intake.intake_support import KEY_K1, Intake, run_intake
from tests.support.apps import issue_test_token

RESTRICTED_KEYS = {"source", "restricted"}
DEADLINE_S = 60.0  # generous: the path is outbox relay -> Kafka -> consumer group join


async def _recorded_people(settings: IntakeSettings) -> set[str]:
    engine = make_engine(settings, "intake")
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.select(directory_people.c.person_id))
            return {row.person_id for row in rows}
    finally:
        await engine.dispose()


async def _wait_for_people(settings: IntakeSettings, person: str) -> set[str]:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        people = await _recorded_people(settings)
        if person in people:
            return people
        await asyncio.sleep(0.2)
    pytest.fail(f"intake did not record the directory within {DEADLINE_S} s")


async def _read(intake: Intake, notice_id: str, token: str) -> dict[str, Any]:
    response = await intake.client.get(
        f"/v1/notices/{notice_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_only_a_contact_in_the_directory_or_granted_reads_restricted_detail(
    tmp_path: Path,
    pg_database: str,
    kafka_bootstrap: str,
    make_settings: Callable[..., Any],
) -> None:
    await ensure_topics(kafka_bootstrap, [DIRECTORY])
    settings: IntakeSettings = make_settings(
        IntakeSettings,
        database_url=pg_database,
        kafka_bootstrap_servers=kafka_bootstrap,
        intake_encryption_keys=SecretStr(f"k1:{KEY_K1}"),
        intake_sweep_interval_s=3600.0,
        # A group of its own: it reads the topic from the start, and the newest
        # announcement (this test's router, below) wins whatever came before.
        intake_group_prefix=f"intake-scope-{uuid.uuid4().hex[:10]}",
    )
    stranger = f"departed-backup-{uuid.uuid4().hex[:6]}"
    async with router_running(
        tmp_path / "router", database_url=pg_database, kafka_bootstrap=kafka_bootstrap
    ) as router:
        spoc = str(router.people.spoc)
        tokens = {
            "field_office": await issue_test_token(settings, Role.FIELD_OFFICE, "SF", "fo-sf"),
            "spoc": await issue_test_token(settings, Role.CONTACT, "SPOC", spoc),
            "stranger": await issue_test_token(settings, Role.CONTACT, "Ex-backup", stranger),
            "granted": await issue_test_token(
                settings, Role.CONTACT, "Backup onboarding", stranger, restricted_grant=True
            ),
        }
        async with run_intake(settings, tokens=tokens) as intake:
            people = await _wait_for_people(settings, spoc)
            everyone = {router.people.spoc, router.people.backup, router.people.deputy}
            assert people == {str(person) for person in everyone}
            # Intake's readiness report names the directory it holds (version and when
            # router published it, never who is in it): the same as router's.
            in_force = await router.client.get("/v1/directory", headers=router.auth("admin"))
            ready = (await intake.client.get("/internal/ready")).json()
            held = ready["facts"]["directory"]
            assert held["version"] == in_force.json()["version"]
            assert datetime.fromisoformat(held["published_at"]) == datetime.fromisoformat(
                in_force.json()["created_at"]
            )
            assert spoc not in json.dumps(ready)
            notice = await intake.created()

            # In the directory: source and restricted detail, decrypted.
            detail = await _read(intake, notice["id"], tokens["spoc"])
            assert detail["restricted"]["names"] == ["Esteban Quiroga"]
            assert detail["source"]["field_office_id"] == "fo-sf"
            # A contact token whose subject is in no directory: metadata only.
            refused = await _read(intake, notice["id"], tokens["stranger"])
            assert RESTRICTED_KEYS.isdisjoint(refused)
            assert refused["id"] == notice["id"]
            # The same subject with the admin's explicit grant reads it.
            granted = await _read(intake, notice["id"], tokens["granted"])
            assert granted["restricted"]["names"] == ["Esteban Quiroga"]

            # Only the two reads that showed restricted detail were audited as such (an entry
            # is in audit_pending until sealed into audit_log: count each entry once).
            rows = await intake.rows("audit_pending") + await intake.rows("audit_log")
            reads = {
                row["entry_id"]
                for row in rows
                if row["notice_id"] == notice["id"] and row["action"] == "notice.restricted_read"
            }
            assert len(reads) == 2
            # The stranger's refused read is in the chain too, as that token, and why.
            refusals = {
                row["entry_id"]
                for row in rows
                if row["notice_id"] == notice["id"] and row["action"] == "notice.restricted_refused"
            }
            assert len(refusals) == 1

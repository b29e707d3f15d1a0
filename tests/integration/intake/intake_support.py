"""Helpers of the intake integration tests: the running app, bodies, table dumps."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from services.common.auth import Role, issue_token
from services.common.db import make_engine, make_session_factory
from services.intake.app import compose
from services.intake.config import IntakeSettings
from services.intake.deps import IntakeDeps
from services.intake.worker import seal_audit
from tests.support.apps import running_app

KEY_K1 = base64.b64encode(b"k1-test-key-for-intake-0123456789"[:32]).decode()
KEY_K2 = base64.b64encode(b"k2-test-key-for-intake-abcdefghij"[:32]).decode()

# Who holds which token in every harness: (role, name, subject). `contact` is issued with
# the admin's grant of restricted detail: these harnesses run intake alone, with no router
# to announce a directory its subject could be in (test_intake_directory_scope.py covers
# the directory path and the refusal).
PRINCIPALS: dict[str, tuple[Role, str, str | None]] = {
    "field_office": (Role.FIELD_OFFICE, "SF field office system", "fo-sf"),
    "field_office_b": (Role.FIELD_OFFICE, "LA field office system", "fo-la"),
    "contact": (Role.CONTACT, "Assistant chief (SPOC)", None),
    "ops": (Role.OPS, "Operations", None),
    "vetter": (Role.VETTER, "Vetter", None),
    "liaison": (Role.LIAISON, "Community centre", None),
    "admin": (Role.ADMIN, "Admin", None),
}


def notice_body(reference: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid POST /v1/notices body (restricted values are ordinary, not canaries)."""
    now = datetime.now(UTC).replace(microsecond=0)
    body: dict[str, Any] = {
        "reference": reference or f"ERO-{uuid.uuid4().hex[:10]}",
        "received_via": "api",
        "status": "Exercise",
        "operation_type": "targeted_arrest",
        "public_safety_nexus": True,
        "window_start": (now + timedelta(hours=1)).isoformat(),
        "window_end": (now + timedelta(hours=4)).isoformat(),
        "area": "Mission District",
        "area_code": "district-3",
        "summary": "Federal agents plan a targeted operation in the district.",
        "source": {
            "field_office_name": "San Francisco ERO",
            "agent": {
                "name": "Dana Whitlock",
                "phone": "+1 415 555 0199",
                "email": "d.whitlock@ice.dhs.gov",
            },
        },
        "restricted": {
            "names": ["Esteban Quiroga"],
            "addresses": ["2231 Folsom St Apt 4"],
            "vehicles": ["Silver Tacoma 7XYZ123"],
            "exact_locations": ["Corner of 19th and Folsom"],
            "free_text": "Subject usually leaves for work around six.",
        },
    }
    body.update(overrides)
    return body


def revision_body(body: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """An update body from a submission body (the reference cannot change)."""
    revised = {k: v for k, v in body.items() if k != "reference"}
    revised.update(overrides)
    return revised


@dataclass
class Intake:
    """A running intake app and what tests need around it."""

    app: FastAPI
    deps: IntakeDeps
    client: httpx.AsyncClient
    settings: IntakeSettings
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str | None, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return headers

    async def submit(
        self, body: dict[str, Any] | None = None, who: str = "field_office", **headers: str
    ) -> httpx.Response:
        return await self.client.post(
            "/v1/notices", json=body or notice_body(), headers=self.auth(who, **headers)
        )

    async def created(
        self, body: dict[str, Any] | None = None, who: str = "field_office"
    ) -> dict[str, Any]:
        response = await self.submit(body, who)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def rows(self, table: str) -> list[dict[str, Any]]:
        if table == "audit_log":
            # Entries reach the chain through the sealer: seal what the requests wrote.
            await seal_audit(self.deps)
        engine = make_engine(self.settings, "intake")
        try:
            async with engine.connect() as conn:
                result = await conn.execute(sa.text(f'SELECT * FROM "{table}"'))
                return [dict(row._mapping) for row in result]
        finally:
            await engine.dispose()

    async def count(self, table: str) -> int:
        return len(await self.rows(table))

    async def counts(self) -> dict[str, int]:
        tables = ("notices", "notice_versions", OUTBOX_LEDGER, "audit_log", "idempotency_keys")
        return {table: await self.count(table) for table in tables}

    async def events(self) -> list[str]:
        """The event types written to the outbox, in order (published or not)."""
        return [row["event_type"] for row in await self.rows(OUTBOX_LEDGER)]

    async def dump(self) -> str:
        """Every row of every intake table as text: what a database dump would show."""
        engine = make_engine(self.settings, "intake")
        try:
            async with engine.connect() as conn:
                names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
                lines = []
                for name in names:
                    for row in await conn.execute(sa.text(f'SELECT * FROM "{name}"')):
                        lines.append(f"{name}: {tuple(row)!r}")
                return "\n".join(lines)
        finally:
            await engine.dispose()


async def _issue_tokens(settings: IntakeSettings) -> dict[str, str]:
    engine = make_engine(settings, "auth")
    try:
        async with make_session_factory(engine)() as session, session.begin():
            tokens = {}
            for who, (role, name, subject) in PRINCIPALS.items():
                issued = await issue_token(
                    session,
                    role=role,
                    name=name,
                    subject=subject,
                    restricted_grant=who == "contact",
                )
                tokens[who] = issued.token
            return tokens
    finally:
        await engine.dispose()


# Every row ever written to the outbox, copied by a trigger of the test database: the
# relay deletes a row once Kafka has it, so the outbox itself holds only the rows still
# owed, and "announced once" or "nothing stored" must be read here.
OUTBOX_LEDGER = "test_outbox_ledger"
_LEDGER_DDL = {
    "postgresql": (
        f"CREATE TABLE IF NOT EXISTS {OUTBOX_LEDGER} (id BIGINT, key TEXT, event_type TEXT)",
        f"CREATE OR REPLACE FUNCTION {OUTBOX_LEDGER}() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN "
        f"INSERT INTO {OUTBOX_LEDGER} VALUES (NEW.id, NEW.key, NEW.event_type); "
        "RETURN NULL; END $$",
        f"DROP TRIGGER IF EXISTS {OUTBOX_LEDGER} ON outbox_messages",
        f"CREATE TRIGGER {OUTBOX_LEDGER} AFTER INSERT ON outbox_messages "
        f"FOR EACH ROW EXECUTE FUNCTION {OUTBOX_LEDGER}()",
    ),
    "sqlite": (
        f"CREATE TABLE IF NOT EXISTS {OUTBOX_LEDGER} (id INTEGER, key TEXT, event_type TEXT)",
        f"CREATE TRIGGER IF NOT EXISTS {OUTBOX_LEDGER} AFTER INSERT ON outbox_messages BEGIN "
        f"INSERT INTO {OUTBOX_LEDGER} VALUES (NEW.id, NEW.key, NEW.event_type); END",
    ),
}


async def install_outbox_ledger(settings: IntakeSettings) -> None:
    """Copy every row written to intake's outbox into `OUTBOX_LEDGER` from now on (again
    on a restart over the same database: the statements are idempotent)."""
    engine = make_engine(settings, "intake")
    try:
        async with engine.begin() as conn:
            for statement in _LEDGER_DDL[conn.dialect.name]:
                await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


@asynccontextmanager
async def run_intake(
    settings: IntakeSettings, tokens: dict[str, str] | None = None
) -> AsyncIterator[Intake]:
    """Start intake with `settings`; issue a token per principal unless given."""
    service = compose(settings)
    async with running_app(service.app) as client:
        harness = Intake(service.app, service.deps, client, settings)
        await install_outbox_ledger(settings)
        harness.tokens = tokens if tokens is not None else await _issue_tokens(settings)
        yield harness

"""A submission's NOTIFY carries this process's token, so intake's own relay (woken in
process by the commit) does not start a second, empty round on it (outbox/relay.py)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from services.common.db import asyncpg_dsn
from services.common.outbox import writing
from tests.integration.intake.intake_support import Intake

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_submissions_notify_carries_this_processs_token(intake: Intake) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(asyncpg_dsn(make_url(str(intake.settings.database_url))))
    await listener.add_listener("aviso_outbox_intake", lambda *args: heard.put_nowait(args[3]))
    try:
        await intake.created()
        assert await asyncio.wait_for(heard.get(), timeout=30) == writing._PROCESS_TOKEN
    finally:
        await listener.close()

"""A submission's NOTIFY carries this process's token, so intake's own relay (woken in
process by the commit) does not start a second, empty round on it (outbox/relay.py); and
it says when the submission's row was handed to this process's relay, so the relays of
intake's other worker processes skip the claim it would start (it could only find the
row leased), while whoever watches commits there still hears of it."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.common.outbox import OutboxRelay, writing
from tests.integration.intake.intake_support import Intake
from tests.support.outbox_peers import peer_listener

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_submissions_notify_carries_this_processs_token(intake: Intake) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    url = make_url(str(intake.settings.database_url))
    # Another intake process's relay listens (else no NOTIFY is sent: outbox/peers.py).
    async with peer_listener(url, "intake", lambda *args: heard.put_nowait(args[3])):
        await intake.created()
        # The running app's relay took the row at commit: handed over, said so.
        payload = await asyncio.wait_for(heard.get(), timeout=30)
        assert payload == writing._PROCESS_TOKEN + writing.HANDED_SUFFIX


async def _publish_nothing(*_: object) -> None:
    raise AssertionError("nothing is published in this test")


async def test_another_processs_handed_rows_wake_its_watchers_but_no_claim() -> None:
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")  # never used
    relay = OutboxRelay(engine=engine, publish=_publish_nothing, component="intake")
    watcher = asyncio.Event()
    unwatch = writing.watch_commits(watcher)
    relay._claim_wanted = False  # not started: no first round wanted here
    try:
        relay._notified(None, 1, "aviso_outbox_intake", "another-process" + writing.HANDED_SUFFIX)
        assert watcher.is_set()  # e.g. a worker that sleeps until commits happen
        assert not relay._claim_wanted
        assert not relay._wake.is_set()

        watcher.clear()
        own = writing._PROCESS_TOKEN
        relay._notified(None, 1, "aviso_outbox_intake", own + writing.HANDED_SUFFIX)
        relay._notified(None, 1, "aviso_outbox_intake", own)
        assert not watcher.is_set()
        assert not relay._claim_wanted

        # Rows not handed over (or a sender that does not say): a claim round.
        relay._notified(None, 1, "aviso_outbox_intake", "another-process")
        assert relay._claim_wanted
        assert watcher.is_set()
    finally:
        unwatch()
        await engine.dispose()

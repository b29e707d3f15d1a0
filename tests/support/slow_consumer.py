"""A service process with a deliberately slow handler, for the SIGTERM test.

Run as `python -m tests.support.slow_consumer TOPIC GROUP`; settings come from the
environment like any Aviso service. Each event inserts one row into `test_effects`.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import sqlalchemy as sa

from schemas.notices import NoticeUpdated
from services.common.cloudevents import Envelope
from services.common.db import UnitOfWork
from services.common.logging import configure_logging
from services.common.runtime import ServiceRuntime
from services.common.settings import CommonSettings

EFFECTS = sa.table(
    "test_effects", sa.column("message_id"), sa.column("notice_id"), sa.column("version")
)


async def main(topic: str, group: str) -> None:
    settings = CommonSettings()
    configure_logging("slow_consumer", fmt="json")
    runtime = ServiceRuntime(name="intake", settings=settings)

    @runtime.consumer.on("notice.updated", topic=topic, group_id=group)
    async def slow(envelope: Envelope[NoticeUpdated], uow: UnitOfWork) -> None:
        session = uow.session
        await asyncio.sleep(0.15)  # long enough that SIGTERM lands mid-handler
        await session.execute(
            sa.insert(EFFECTS).values(
                message_id=envelope.id,
                notice_id=str(envelope.data.notice_id),
                version=envelope.data.version,
            )
        )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await runtime.start()
    print("READY", flush=True)
    await stop.wait()
    await runtime.stop()
    print("STOPPED", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

"""Processes for the crash tests and `benchmarks/recovery.py`: killed with SIGKILL mid-work.

    python -m tests.integration.common.crashable member TOPIC GROUP NAME DELAY_S
    python -m tests.integration.common.crashable relay

`member` joins GROUP on TOPIC and records every event it applies as a row
(message_id, member, processed_at) in `test_member_effects`, which the parent creates.
`relay` runs an outbox relay whose broker never answers, so it claims rows and holds
them (renewing its lease) until it is killed. Settings come from the environment like
any Aviso service; each prints `READY ...` once it is running.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.notices import NoticeUpdated
from services.common.cloudevents import Envelope, new_event
from services.common.db import UnitOfWork, make_engine, make_session_factory
from services.common.kafka import EventConsumer, make_broker
from services.common.logging import configure_logging
from services.common.outbox import OutboxRelay, OutboxRow
from services.common.settings import CommonSettings
from tests.support.events import notice_updated
from tests.support.kafka_io import wait_for

__all__ = [
    "MEMBER_EFFECTS",
    "MEMBER_EFFECTS_DDL",
    "Effect",
    "Member",
    "member_effects",
    "owners_of_partitions",
    "produce_to_partitions",
]

ROOT = Path(__file__).resolve().parents[3]
DEADLINE_S = 60.0
_MODULE = "tests.integration.common.crashable"

MEMBER_EFFECTS = sa.table(
    "test_member_effects",
    sa.column("message_id"),
    sa.column("member"),
    sa.column("processed_at"),
)
MEMBER_EFFECTS_DDL = (
    "CREATE TABLE test_member_effects "
    "(message_id VARCHAR(64), member VARCHAR(16), processed_at DOUBLE PRECISION)"
)


@dataclass
class Member:
    """A running `member` process."""

    name: str
    process: subprocess.Popen[str]

    @classmethod
    def start(
        cls, env: dict[str, str], topic: str, group: str, name: str, *, delay_s: float = 0.02
    ) -> Member:
        """Spawn a `member` process whose handler takes `delay_s` (see `ready`)."""
        process = subprocess.Popen(
            [sys.executable, "-m", _MODULE, "member", topic, group, name, str(delay_s)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        return cls(name, process)

    async def ready(self) -> None:
        """Wait until the member consumes (its READY line)."""
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(
                asyncio.to_thread(self.process.stdout.readline), DEADLINE_S
            )
            assert line, f"member {self.name} exited with {self.process.poll()}"
            if line.startswith("READY"):
                return

    def kill(self) -> None:
        """SIGKILL: a crash, nothing gets to clean up."""
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM if it still runs, and reap it."""
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=30)


class Effect(NamedTuple):
    """One event a member applied, and when (`time.time()` in the member)."""

    message_id: str
    member: str
    processed_at: float


async def produce_to_partitions(
    bootstrap: str, topic: str, partitions: list[int], per_partition: int
) -> dict[str, int]:
    """Write `per_partition` events to each partition; returns message id -> partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    sent: dict[str, int] = {}
    try:
        for partition in partitions:
            for _ in range(per_partition):
                event = new_event(notice_updated(uuid.uuid4(), 2), source="aviso.test")
                await producer.send_and_wait(
                    topic,
                    event.payload.encode(),
                    key=event.key.encode(),
                    partition=partition,
                    headers=[(k, v.encode()) for k, v in event.headers.items()],
                )
                sent[event.message_id] = partition
    finally:
        await producer.stop()
    return sent


async def member_effects(engine: AsyncEngine) -> list[Effect]:
    """Every event applied so far, by any member."""
    t = MEMBER_EFFECTS
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(t.c.message_id, t.c.member, t.c.processed_at))
        return [Effect(r.message_id, r.member, float(r.processed_at)) for r in rows]


async def owners_of_partitions(
    engine: AsyncEngine, bootstrap: str, topic: str, partitions: list[int]
) -> dict[int, str]:
    """Which member consumes each partition, once two rounds of probes agree and both work."""
    previous: dict[int, str] = {}
    while True:
        probes = await produce_to_partitions(bootstrap, topic, partitions, 1)
        await wait_for(functools.partial(_applied, engine, set(probes)), timeout=DEADLINE_S)
        who = {e.message_id: e.member for e in await member_effects(engine)}
        owners = {partition: who[m] for m, partition in probes.items()}
        if owners == previous and len(set(owners.values())) == 2:
            return owners
        previous = owners


async def _applied(engine: AsyncEngine, message_ids: set[str]) -> bool:
    return message_ids <= {e.message_id for e in await member_effects(engine)}


async def member(topic: str, group: str, name: str, delay_s: float) -> None:
    """Consume until killed, recording each applied event with this member's name."""
    settings = CommonSettings()
    engine = make_engine(settings, "intake")
    broker = make_broker(settings, service="crashable")
    consumer = EventConsumer(
        broker=broker,
        sessions=make_session_factory(engine),
        settings=settings,
        service="crashable",
    )

    @consumer.on("notice.updated", topic=topic, group_id=group)
    async def record(envelope: Envelope[NoticeUpdated], uow: UnitOfWork) -> None:
        await asyncio.sleep(delay_s)  # a handler that takes a moment, so a kill lands mid-stream
        await uow.session.execute(
            sa.insert(MEMBER_EFFECTS).values(
                message_id=envelope.id, member=name, processed_at=time.time()
            )
        )

    await broker.start()
    print("READY", name, flush=True)
    await asyncio.Event().wait()


async def relay() -> None:
    """Claim outbox rows and hold them: the broker this relay publishes to never answers."""
    settings = CommonSettings()
    engine = make_engine(settings, "intake")

    async def never_acknowledged(row: OutboxRow) -> None:
        await asyncio.Event().wait()

    holder = OutboxRelay(
        engine=engine,
        publish=never_acknowledged,
        component="intake",
        batch_size=10_000,
        poll_interval_s=settings.outbox_poll_interval_s,
        claim_ttl_s=settings.outbox_claim_ttl_s,
    )
    await holder.start()
    print("READY", holder.relay_id, flush=True)
    await asyncio.Event().wait()


def main(argv: list[str]) -> None:
    configure_logging("crashable", fmt="json")
    match argv:
        case ["member", topic, group, name, delay_s]:
            asyncio.run(member(topic, group, name, float(delay_s)))
        case ["relay"]:
            asyncio.run(relay())
        case _:
            raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])

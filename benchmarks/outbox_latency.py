"""Outbox latency: from a use case's commit to the consumer's handler, through real Kafka.

    python benchmarks/outbox_latency.py [--events 300] [--rate 50] [--database-url URL]
                                        [--busy-tasks N --busy-us U]

Prints percentiles of commit→handled latency and the throughput. It measures what the
outbox design promises: a commit wakes the relay at once, so latency is the broker
round trip, not a polling interval (compare `--no-wake`, which only polls).
`--busy-tasks N` runs N tasks beside it that each hold the loop `--busy-us` microseconds a
turn, as a busy service's other work does: every loop turn the relay's path takes then
costs N * U microseconds, so the figure shows how many turns the path waits.
Needs KAFKA_BOOTSTRAP_SERVERS (or a broker on 127.0.0.1:9092); SQLite when no URL.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from schemas.notices import NoticeUpdated
from schemas.topics import NOTICES
from services.common.cloudevents import Envelope
from services.common.db import make_engine, make_session_factory
from services.common.kafka import EventConsumer, make_broker, outbox_publisher
from services.common.logging import configure_logging
from services.common.migrations import upgrade
from services.common.outbox import OutboxRelay, enqueue
from services.common.settings import CommonSettings
from tests.support.events import notice_updated


async def _busy(hold_us: int) -> None:
    """Hold the loop `hold_us` microseconds a turn, for ever (another task's work)."""
    while True:
        until = time.perf_counter() + hold_us / 1e6
        while time.perf_counter() < until:
            pass
        await asyncio.sleep(0)


async def run(
    events: int,
    rate: float,
    database_url: str | None,
    wake: bool,
    poll_s: float,
    busy: tuple[int, int] = (0, 0),
) -> None:
    var = Path(tempfile.mkdtemp(prefix="aviso-bench-"))
    settings = CommonSettings(var_dir=var, database_url=database_url, log_level="WARNING")
    await upgrade(settings, "intake")
    engine = make_engine(settings, "intake")
    sessions = make_session_factory(engine)
    broker = make_broker(settings, service="bench")
    consumer = EventConsumer(broker=broker, sessions=sessions, settings=settings, service="bench")
    committed: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()
    run_id = uuid.uuid4()

    @consumer.on("notice.updated", topic=NOTICES, group_id=f"bench-{run_id.hex[:8]}")
    async def handle(envelope: Envelope[NoticeUpdated], session: AsyncSession) -> None:
        started = committed.get(envelope.id)
        if started is None:
            return
        latencies.append(time.perf_counter() - started)
        if len(latencies) >= events:
            done.set()

    relay = OutboxRelay(
        engine=engine,
        publish=outbox_publisher(broker),
        component="intake",
        poll_interval_s=poll_s,
        wake_on_commit=wake,
    )
    await broker.connect()
    await relay.start()
    await broker.start()
    await asyncio.sleep(3)  # let the consumer group settle before timing anything

    busy_tasks = [asyncio.create_task(_busy(busy[1])) for _ in range(busy[0])]
    began = time.perf_counter()
    for _ in range(events):
        async with sessions() as session, session.begin():
            outgoing = await enqueue(session, notice_updated(uuid.uuid4(), 2), source="aviso.bench")
        committed[outgoing.message_id] = time.perf_counter()
        await asyncio.sleep(1 / rate)
    await asyncio.wait_for(done.wait(), timeout=120)
    elapsed = time.perf_counter() - began
    for task in busy_tasks:
        task.cancel()

    await relay.stop()
    await broker.stop()
    await engine.dispose()
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100)
    backend = "postgresql" if database_url else "sqlite"
    print(
        f"outbox latency ({backend}, wake-on-commit={'on' if wake else 'off'}, "
        f"{events} events at {rate}/s, busy tasks {busy[0]} x {busy[1]} us)"
    )
    print(
        f"  p50 {q[49]:7.1f} ms   p95 {q[94]:7.1f} ms   p99 {q[98]:7.1f} ms   max {ms[-1]:7.1f} ms"
    )
    print(f"  throughput {events / elapsed:.1f} events/s over {elapsed:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50.0, help="commits per second")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--no-wake", action="store_true", help="disable wake-on-commit (poll only)")
    parser.add_argument("--poll", type=float, default=1.0, help="fallback poll interval, seconds")
    parser.add_argument("--busy-tasks", type=int, default=0, help="other tasks holding the loop")
    parser.add_argument("--busy-us", type=int, default=200, help="each one's hold per loop turn")
    args = parser.parse_args()
    configure_logging("bench", level="WARNING", fmt="json")
    busy = (args.busy_tasks, args.busy_us)
    asyncio.run(run(args.events, args.rate, args.database_url, not args.no_wake, args.poll, busy))


if __name__ == "__main__":
    main()

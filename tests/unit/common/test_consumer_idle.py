"""An idle consumer group member: how often its client wakes up and talks to the broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import create_async_engine

from services.common.cloudevents import Envelope
from services.common.db import UnitOfWork, make_session_factory
from services.common.kafka import EventConsumer
from services.common.settings import CommonSettings


async def _handler(envelope: Envelope[object], uow: UnitOfWork) -> None:
    return None


def _consumer(settings: CommonSettings) -> EventConsumer:
    engine = create_async_engine("sqlite+aiosqlite://")  # never connects here
    return EventConsumer(
        broker=KafkaBroker(), sessions=make_session_factory(engine), settings=settings,
        service="test",
    )  # fmt: skip


def test_an_idle_member_wakes_once_per_long_poll_not_five_times_a_second(tmp_path: Path) -> None:
    settings = CommonSettings(var_dir=tmp_path, database_url=None, consumer_fetch_max_wait_ms=1_500)
    consumer = _consumer(settings)
    consumer.on("x.happened", topic="topic.a", group_id="g")(_handler)

    (subscriber,) = consumer._broker.subscribers
    # What the subscriber hands to aiokafka's consumer (FastStream keeps it as given).
    args = subscriber._connection_args  # type: ignore[attr-defined]
    assert args["fetch_max_wait_ms"] == 1_500
    # aiokafka's fetch task would otherwise wake every 200 ms to look for work that it
    # is told of anyway; once per long-poll instead.
    assert args["consumer_timeout_ms"] == 1_500
    assert args["heartbeat_interval_ms"] == settings.consumer_session_timeout_ms // 3
    # A group on a latency path is answered as each record lands (rumor control's asks
    # for batches: tests/unit/rumor_control/test_rumor_subscribers.py).
    assert args["fetch_min_bytes"] == 1


def test_a_group_can_ask_the_broker_for_batched_fetches(tmp_path: Path) -> None:
    settings = CommonSettings(var_dir=tmp_path, database_url=None)
    consumer = _consumer(settings)
    consumer.group("g", inboxes={"topic.a": "g"}, fetch_min_bytes=4096)
    consumer.on("x.happened", topic="topic.a", group_id="g")(_handler)

    (subscriber,) = consumer._broker.subscribers
    assert subscriber._connection_args["fetch_min_bytes"] == 4096  # type: ignore[attr-defined]


def test_a_group_off_the_urgent_path_can_have_a_longer_session_and_fewer_heartbeats(
    tmp_path: Path,
) -> None:
    settings = CommonSettings(var_dir=tmp_path, database_url=None)
    slow_args, urgent_args = _slow_and_urgent(settings, session_timeout_ms=6_000)
    assert slow_args["session_timeout_ms"] == 6_000
    assert slow_args["heartbeat_interval_ms"] == 2_000  # a third of its own session
    # Every other group keeps the service's failover time.
    assert urgent_args["session_timeout_ms"] == settings.consumer_session_timeout_ms == 2_000
    assert urgent_args["heartbeat_interval_ms"] == 2_000 // 3


def test_a_group_off_the_urgent_path_can_long_poll_longer(tmp_path: Path) -> None:
    settings = CommonSettings(var_dir=tmp_path, database_url=None)
    slow_args, urgent_args = _slow_and_urgent(settings, fetch_max_wait_ms=5_000)
    # An empty fetch every 5 s, and the fetch task wakes once per long-poll with it.
    assert slow_args["fetch_max_wait_ms"] == slow_args["consumer_timeout_ms"] == 5_000
    # Every other group keeps the service's wait (router's takeover after a crash).
    assert urgent_args["fetch_max_wait_ms"] == settings.consumer_fetch_max_wait_ms == 1_000
    assert urgent_args["consumer_timeout_ms"] == 1_000


def test_offsets_are_committed_every_five_seconds_by_default(tmp_path: Path) -> None:
    # A commit is a broker request: at 10 messages a second, one every 5 s per group
    # instead of one a second (the inbox turns what a crash re-delivers into no-ops).
    settings = CommonSettings(var_dir=tmp_path, database_url=None)
    assert settings.consumer_commit_interval_ms == 5_000
    assert _consumer(settings).offsets._interval_s == 5.0


def _slow_and_urgent(settings: CommonSettings, **slow: int) -> tuple[Any, Any]:
    """The connection arguments of a group declared with `slow` and of a plain one."""
    consumer = _consumer(settings)
    consumer.group("slow", inboxes={"topic.a": "slow"}, **slow)
    consumer.on("x.happened", topic="topic.a", group_id="slow")(_handler)
    consumer.on("x.happened", topic="topic.b", group_id="urgent")(_handler)
    # The broker keeps its subscribers in no particular order: find each by its group.
    by_group = {s.group_id: s._connection_args for s in consumer._broker.subscribers}  # type: ignore[attr-defined]
    return by_group["slow"], by_group["urgent"]

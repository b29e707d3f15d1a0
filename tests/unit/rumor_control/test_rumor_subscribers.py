"""Kafka wiring of rumor_control at unit level: FastStream's TestKafkaBroker delivers an
envelope with CloudEvents headers to the real consumer, and each subscriber must call its
one use case with the event's data and this service's unit of work on the consumer's session.

No broker, no database: the inbox claim is stubbed and the use cases are recorders.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from schemas.base import EventData
from schemas.notices import NoticeCancelled
from schemas.topics import ALERTS, NOTICES
from services.common import applying
from services.common.cloudevents import new_event, parse_envelope
from services.common.db import UnitOfWork, make_session_factory
from services.common.inbox import Claim
from services.common.kafka import EventConsumer
from services.rumor_control import notices, subscribers
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.unit_of_work import RumorControlUnitOfWork
from tests.unit.rumor_control.conftest import acknowledgement
from tests.unit.rumor_control.fakes import FakeClock, notice


@dataclass
class Calls:
    """What each use case was called with."""

    seen: list[tuple[str, Any, RumorControlUnitOfWork]] = field(default_factory=list)
    # (topic, inbox name) of every inbox claim, in order.
    inboxes: list[tuple[str, str]] = field(default_factory=list)

    def recorder(self, name: str, argument: str) -> Callable[..., Any]:
        async def use_case(uow: RumorControlUnitOfWork, **kwargs: Any) -> None:
            self.seen.append((name, kwargs[argument], uow))

        return use_case


@pytest.fixture
async def wired(
    deps: RumorControlDeps, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[KafkaBroker, Calls, list[AsyncSession]]]:
    calls = Calls()
    for name, argument in (
        ("apply_notice", "notice"),
        ("apply_notice_cancelled", "cancelled"),
        ("acknowledge_alert", "acknowledged"),
    ):
        monkeypatch.setattr(notices, name, calls.recorder(name, argument))
    claimed: list[AsyncSession] = []

    async def claim(session: AsyncSession, *, consumer: str, topic: str, **_: Any) -> bool:
        claimed.append(session)  # the inbox row would go into this transaction
        calls.inboxes.append((topic, consumer))
        return True

    monkeypatch.setattr(applying, "claim_message", claim)
    broker = KafkaBroker()
    # A session factory that never connects: nothing here executes SQL.
    engine = create_async_engine("sqlite+aiosqlite://")
    consumer = EventConsumer(
        broker=broker,
        sessions=make_session_factory(engine),
        settings=deps.settings,
        service="rumor_control",
    )
    subscribers.register(consumer, deps)
    async with TestKafkaBroker(broker) as test_broker:
        yield test_broker, calls, claimed
    await engine.dispose()


async def _publish(broker: KafkaBroker, data: EventData) -> None:
    outgoing = new_event(data, source="aviso.tests")
    await broker.publish(
        outgoing.payload.encode(),
        topic=outgoing.topic,
        key=outgoing.key.encode(),
        headers=outgoing.headers,
    )


async def test_each_event_reaches_its_one_use_case_on_the_consumers_session(
    deps: RumorControlDeps,
    clock: FakeClock,
    wired: tuple[KafkaBroker, Calls, list[AsyncSession]],
) -> None:
    broker, calls, claimed = wired
    received = notice(deps)
    ack = acknowledgement(received.notice_id, at=clock)
    cancelled = NoticeCancelled(
        notice_id=received.notice_id,
        version=2,
        references=(f"{received.notice_id}:1",),
        status="Actual",
        sent_at=clock(),
        received_at=clock() + timedelta(minutes=1),
        reason="operation_cancelled",
    )

    for data in (received, ack, cancelled):
        await _publish(broker, data)

    assert [(name, data) for name, data, _ in calls.seen] == [
        ("apply_notice", received),
        ("acknowledge_alert", ack),
        ("apply_notice_cancelled", cancelled),
    ]
    for (_, _, uow), session in zip(calls.seen, claimed, strict=True):
        assert isinstance(uow, RumorControlUnitOfWork)
        assert uow.session is session  # one transaction with the inbox claim


async def test_nothing_is_consumed_from_the_retired_deliveries_topic(
    wired: tuple[KafkaBroker, Calls, list[AsyncSession]],
) -> None:
    broker, _, _ = wired
    topics = {
        str(getattr(topic, "name", topic))
        for subscriber in broker.subscribers
        for topic in getattr(subscriber, "topics", ())
    }
    assert topics == {NOTICES, ALERTS}


async def test_one_group_member_reads_both_topics_each_recorded_under_its_former_group(
    deps: RumorControlDeps,
    clock: FakeClock,
    wired: tuple[KafkaBroker, Calls, list[AsyncSession]],
) -> None:
    broker, calls, _ = wired
    (subscriber,) = broker.subscribers  # one consumer, so one member of one group
    assert subscriber.group_id == subscribers.group_id(deps.settings.rumor_group_prefix)
    received = notice(deps)

    await _publish(broker, received)
    await _publish(broker, acknowledgement(received.notice_id, at=clock))

    assert [name for name, _, _ in calls.seen] == ["apply_notice", "acknowledge_alert"]
    prefix = deps.settings.rumor_group_prefix
    # The inbox names of the two groups it replaced: nothing they applied is applied again.
    assert calls.inboxes == [
        (NOTICES, f"{prefix}rumor_control.notices"),
        (ALERTS, f"{prefix}rumor_control.alerts"),
    ]


def _member_arguments(deps: RumorControlDeps) -> dict[str, Any]:
    """What rumor control's one consumer member hands aiokafka (FastStream keeps it as given)."""
    broker = KafkaBroker()
    engine = create_async_engine("sqlite+aiosqlite://")  # never connects here
    consumer = EventConsumer(
        broker=broker, sessions=make_session_factory(engine), settings=deps.settings,
        service="rumor_control",
    )  # fmt: skip
    subscribers.register(consumer, deps)
    (subscriber,) = broker.subscribers
    args: dict[str, Any] = subscriber._connection_args  # type: ignore[attr-defined]
    return args


def test_the_broker_gathers_rumor_controls_events_before_it_answers_a_fetch(
    deps: RumorControlDeps,
) -> None:
    # Rumor control's one member reads a notice's four events (the notice, three alert
    # events it skips): with fetch_min_bytes 1 the broker woke it with a fetch for each.
    args = _member_arguments(deps)
    assert deps.settings.rumor_consumer_fetch_min_bytes == 64 * 1024  # the default
    assert args["fetch_min_bytes"] == 64 * 1024
    # Batched up to the shared fetch wait, no longer: that bounds how late it hears.
    assert args["fetch_max_wait_ms"] == deps.settings.consumer_fetch_max_wait_ms


def test_rumor_controls_member_heartbeats_a_third_as_often_as_the_urgent_groups(
    deps: RumorControlDeps,
) -> None:
    # Its projections wait on nobody: a 6 s session (heartbeat every 2 s) instead of the
    # services' 2 s (every 667 ms), one broker request a second fewer while idle.
    args = _member_arguments(deps)
    assert deps.settings.rumor_consumer_session_timeout_ms == 6_000  # the default
    assert args["session_timeout_ms"] == 6_000
    assert args["heartbeat_interval_ms"] == 2_000
    assert deps.settings.consumer_session_timeout_ms == 2_000  # router's stays as it was


async def test_only_a_received_notice_offers_to_carry_its_inbox_claim(
    deps: RumorControlDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    carried: list[tuple[Any, Claim, RumorControlUnitOfWork]] = []

    async def use_case(uow: RumorControlUnitOfWork, **kwargs: Any) -> bool:
        carried.append((kwargs["notice"], kwargs["claim"], uow))
        return True

    monkeypatch.setattr(notices, "project_notice_claiming", use_case)
    engine = create_async_engine("sqlite+aiosqlite://")  # never connects here
    consumer = EventConsumer(
        broker=KafkaBroker(), sessions=make_session_factory(engine), settings=deps.settings,
        service="rumor_control",
    )  # fmt: skip
    subscribers.register(consumer, deps)
    (subscription,) = consumer._subscriptions.values()
    # An update, a cancel and an acknowledgement are more than one statement: never carried.
    assert {event for (_, event), route in subscription.routes.items() if route.carrier} == {
        "notice.received"
    }
    received = notice(deps)
    claim = Claim("rumor_control.notices", "m-1", NOTICES)
    route = subscription.routes[NOTICES, "notice.received"]
    assert route.carrier is not None
    async with UnitOfWork(make_session_factory(engine)) as uow:
        envelope = parse_envelope(*_headers_and_body(received))
        assert await route.carrier(envelope, uow, claim)
        ((data, given, ours),) = carried
        assert (data, given) == (received, claim)
        assert isinstance(ours, RumorControlUnitOfWork)
        assert ours.session is uow.session  # the consumer's unit of work, adapted
    await engine.dispose()


def _headers_and_body(data: EventData) -> tuple[dict[str, str], bytes]:
    outgoing = new_event(data, source="aviso.tests")
    return dict(outgoing.headers), outgoing.payload.encode()

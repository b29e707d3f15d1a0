"""The wiring of router's Kafka subscribers to its use cases, on FastStream's TestKafkaBroker.

No broker and no network: TestKafkaBroker hands each published record straight to the
subscriber. The consumer's inbox lives in a throwaway SQLite file (it dedupes on the
CloudEvents id in the same transaction as the use case); the use cases are replaced by
recorders, so what is checked is which use case ran, with what input, in which unit of work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from schemas.base import EventData
from schemas.topics import NOTICES
from services.common.cloudevents import current_correlation_id, new_event
from services.common.db import make_engine, make_session_factory
from services.common.kafka import EventConsumer
from services.common.messaging import messaging_metadata
from services.router import alerting
from services.router.config import RouterSettings
from services.router.deps import RouterDeps
from services.router.subscribers import register_consumers
from services.router.unit_of_work import RouterUnitOfWork
from tests.unit.router.fakes import cancelled, received, updated


@dataclass
class Recorder:
    calls: list[tuple[str, Any, str | None, bool]] = field(default_factory=list)

    def use_case(self, name: str, argument: str) -> Any:
        async def record(uow: Any, *, deps: RouterDeps, **kwargs: Any) -> None:
            self.calls.append(
                (
                    name,
                    kwargs[argument],
                    current_correlation_id.get(),
                    isinstance(uow, RouterUnitOfWork) and uow.session is not None,
                )
            )

        return record


@pytest.fixture
async def wired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[KafkaBroker, Recorder]]:
    # database_url=None: a SQLite file under tmp_path, whatever the environment says.
    settings = RouterSettings(var_dir=tmp_path, database_url=None, router_group_prefix="unit")
    engine = make_engine(settings, "router")
    async with engine.begin() as conn:
        await conn.run_sync(messaging_metadata.create_all)
    sessions = make_session_factory(engine)
    broker = KafkaBroker()
    consumer = EventConsumer(broker=broker, sessions=sessions, settings=settings, service="router")
    recorder = Recorder()
    monkeypatch.setattr(alerting, "open_alert", recorder.use_case("open_alert", "notice"))
    # On SQLite the consumer never offers notice.received's carrier the inbox claim.
    monkeypatch.setattr(
        alerting, "open_alert_claiming", recorder.use_case("open_alert_claiming", "notice")
    )
    monkeypatch.setattr(alerting, "reopen_alert", recorder.use_case("reopen_alert", "notice"))
    monkeypatch.setattr(alerting, "cancel_alert", recorder.use_case("cancel_alert", "notice"))
    register_consumers(consumer, RouterDeps(settings, sessions))
    async with TestKafkaBroker(broker) as test_broker:
        yield test_broker, recorder
    await engine.dispose()


async def _publish(broker: KafkaBroker, data: EventData, topic: str, correlation: str) -> str:
    event = new_event(data, source="aviso.intake", correlation_id=correlation)
    await broker.publish(
        event.payload.encode(), topic=topic, key=event.key.encode(), headers=event.headers
    )
    return event.message_id


async def test_each_notice_event_runs_its_use_case_once(
    wired: tuple[KafkaBroker, Recorder],
) -> None:
    broker, recorder = wired
    first = received()
    again = await _publish(broker, first, NOTICES, "corr-1")
    await _publish(broker, updated(first, 2, summary="Changed"), NOTICES, "corr-2")
    await _publish(broker, cancelled(first, 3), NOTICES, "corr-3")
    # The same CloudEvents id again: the inbox drops it before any use case runs.
    event = new_event(first, source="aviso.intake", message_id=again)
    await broker.publish(event.payload.encode(), topic=NOTICES, headers=event.headers)

    assert [(name, n.version, c, joined) for name, n, c, joined in recorder.calls] == [
        ("open_alert", 1, "corr-1", True),
        ("reopen_alert", 2, "corr-2", True),
        ("cancel_alert", 3, "corr-3", True),
    ]
    assert {n.notice_id for _, n, _, _ in recorder.calls} == {first.notice_id}


async def test_router_consumes_only_notices(wired: tuple[KafkaBroker, Recorder]) -> None:
    # Delivery requests no longer travel over Kafka: the router's own engine delivers.
    broker, _ = wired
    topics = {
        getattr(t, "name", t)
        for subscriber in broker.subscribers
        for t in subscriber.topics  # type: ignore[attr-defined]
    }
    assert topics == {NOTICES}

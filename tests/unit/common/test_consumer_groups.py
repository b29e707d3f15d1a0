"""EventConsumer: one group member per group whatever the number of topics it reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import create_async_engine

from services.common.cloudevents import Envelope
from services.common.db import UnitOfWork, make_session_factory
from services.common.kafka import EventConsumer
from services.common.settings import CommonSettings


async def _handler(envelope: Envelope[object], uow: UnitOfWork) -> None:
    return None


@pytest.fixture
def consumer(tmp_path: Path) -> EventConsumer:
    engine = create_async_engine("sqlite+aiosqlite://")  # never connects here
    return EventConsumer(
        broker=KafkaBroker(),
        sessions=make_session_factory(engine),
        settings=CommonSettings(var_dir=tmp_path, database_url=None),
        service="test",
    )


def _subscribed(consumer: EventConsumer) -> list[tuple[str, list[str]]]:
    """(group, its topics) of every subscriber on the broker, sorted."""
    return sorted(
        (str(subscriber.group_id), sorted(t.name for t in subscriber.topics))
        for subscriber in consumer._broker.subscribers
    )


def test_a_declared_group_reads_all_its_topics_in_one_subscriber(consumer: EventConsumer) -> None:
    consumer.group("g", inboxes={"topic.a": "g.a", "topic.b": "g.b"})
    consumer.on("x.happened", topic="topic.a", group_id="g")(_handler)
    consumer.on("y.happened", topic="topic.b", group_id="g")(_handler)

    assert _subscribed(consumer) == [("g", ["topic.a", "topic.b"])]


def test_an_undeclared_group_reads_the_one_topic_of_its_handlers(consumer: EventConsumer) -> None:
    consumer.on("x.happened", topic="topic.a", group_id="g1")(_handler)
    consumer.on("y.happened", topic="topic.a", group_id="g1")(_handler)
    consumer.on("x.happened", topic="topic.b", group_id="g2")(_handler)

    assert _subscribed(consumer) == [("g1", ["topic.a"]), ("g2", ["topic.b"])]


def test_a_topic_the_group_does_not_read_is_refused(consumer: EventConsumer) -> None:
    consumer.on("x.happened", topic="topic.a", group_id="g")(_handler)

    with pytest.raises(ValueError, match=r"does not read topic\.b"):
        consumer.on("x.happened", topic="topic.b", group_id="g")(_handler)
    with pytest.raises(ValueError, match="already declared"):
        consumer.group("g", inboxes={"topic.b": "g"})
    with pytest.raises(ValueError, match="already has a handler"):
        consumer.on("x.happened", topic="topic.a", group_id="g")(_handler)


class _Record:
    def __init__(self, topic: str, event_type: str, value: bytes) -> None:
        self.topic, self.value, self.partition, self.offset = topic, value, 0, 7
        self.headers = [
            ("ce_id", b"m-1"),
            ("ce_type", event_type.encode()),
            ("ce_source", b"aviso.test"),
            ("ce_specversion", b"1.0"),
        ]


class _Message:
    def __init__(self, record: _Record) -> None:
        self.raw_message = record


@pytest.mark.parametrize(
    ("event_type", "dead_lettered"), [("notice.updated", 1), ("alert.delivered", 0)]
)
async def test_only_an_event_the_group_applies_is_parsed_and_a_bad_one_dead_lettered(
    consumer: EventConsumer, monkeypatch: pytest.MonkeyPatch, event_type: str, dead_lettered: int
) -> None:
    consumer.group("g", inboxes={"topic.a": "g"})
    consumer.on("notice.updated", topic="topic.a", group_id="g")(_handler)
    letters: list[object] = []

    async def dead_letter(*args: object, **kwargs: object) -> None:
        letters.append(args)

    monkeypatch.setattr(consumer, "_dead_letter", dead_letter)
    subscription = consumer._subscriptions["g"]

    await consumer.process(subscription, _Message(_Record("topic.a", event_type, b"{not json")))  # type: ignore[arg-type]

    # A garbage body of a routed type is this group's poison message; one of a type the
    # group does not apply is not even parsed (the group that applies it judges it).
    assert len(letters) == dead_lettered

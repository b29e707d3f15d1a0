"""Resilient Kafka consumers: idempotent, applied in batches, with retries and a DLQ.

- An offset is committed only after the handler's transaction committed (never
  auto-commit-first), in batches (offsets.py: every N messages or T ms, before a
  rebalance and on stop), since the inbox already makes a re-delivery a no-op.
- Batches: when Kafka has already fetched more records behind the one in hand, up to
  `AVISO_CONSUMER_BATCH_MAX` of them are applied in ONE transaction: one inbox INSERT for
  them all (a message already recorded, or twice in the batch, is skipped), each
  handler in turn (a partition's records in offset order) on the same unit of work, one
  COMMIT, then their offsets. The consumer never waits for a batch to fill: a record
  that arrives alone is applied at once, alone, exactly as before batches. Under load
  the records queue in the fetch buffer anyway, and a batch costs one BEGIN, inbox
  INSERT, COMMIT and after-commit wake-up (the outbox relay's round, the delivery
  engine's) instead of one per message.
- When anything in a batch fails, its transaction rolls back and the batch is applied
  again one message at a time, as a lone message is: a failing message is retried K
  times with exponential backoff, each try in a fresh transaction (the batch counts as
  the first try of the message whose handler raised), then it goes to `aviso.dlq.v1`
  with the error and its original headers, and the partition moves on. So one bad
  message costs only itself. A database outage is waited out without spending tries.
- A message that cannot be parsed at all goes to the DLQ at once: retrying it would
  fail the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import ConsumerStoppedError
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import schemas  # noqa: F401 - registers every event model
from schemas.base import UnknownEventType
from schemas.dlq import DeadLettered, b64encode
from schemas.topics import DLQ
from services.common.applying import (
    Applier,
    ClaimCarrier,
    Handler,
    ReadyMessage,
    Route,
    RunCarrier,
    RunPreparer,
    database_unreachable,
)
from services.common.cloudevents import InvalidEnvelope, decode_headers, new_event, parse_envelope
from services.common.logging import bound, get_logger, scrub_text
from services.common.metrics import CONSUMER_DEAD_LETTERED
from services.common.offsets import CommitBeforeRevoke, OffsetCommitter
from services.common.settings import CommonSettings

__all__ = ["EventConsumer", "Handler", "database_unreachable"]

log = get_logger(__name__)

_REBALANCE_TIMEOUT_MS = 10_000


async def _whole_message(message: StreamMessage[Any]) -> StreamMessage[Any]:
    # The handler's argument is the message itself, raw: FastStream would json-decode an
    # application/json body before our handler runs, and a body that fails to decode
    # must reach the DLQ through us instead. Taken as the body rather than through
    # FastStream's `Context`, whose resolver is synchronous and so runs in a worker
    # thread for every message (a thread hop and ~10 % of a consumer's CPU, measured).
    return message


@dataclass
class _Subscription:
    """One consumer group: one member per instance, reading all of its topics."""

    group_id: str
    # topic -> the name its messages are recorded under in the inbox
    inboxes: dict[str, str]
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    # What the broker gathers before it answers a fetch (or the fetch wait ends): 1 answers
    # each record as it lands; more batches a group off the latency path.
    fetch_min_bytes: int = 1
    # How long the group waits for a silent member (None: the service's setting). A group
    # off the urgent path may take longer to fail over and heartbeat less often.
    session_timeout_ms: int | None = None
    # How long an idle member's fetch waits at the broker (None: the service's setting). A
    # record is answered at once whatever it is; longer means fewer empty fetches, and a
    # slower takeover of a crashed member's partitions (see `_subscribe`).
    fetch_max_wait_ms: int | None = None


class EventConsumer:
    """Routes a group's events by topic and `ce_type` to handlers, idempotently, with a DLQ.

    Each handler runs inside one transaction that also records the message id in the
    inbox (several messages' handlers in one, when Kafka has them ready); the offsets are
    committed after that transaction commits.

    A consumer group is one member per service instance whatever the number of topics it
    reads: Kafka's per-member cost (a heartbeat every third of the session timeout, a fetch
    long-poll, a place in every rebalance) is paid once, not once per topic.
    """

    def __init__(
        self,
        *,
        broker: KafkaBroker,
        sessions: async_sessionmaker[AsyncSession],
        settings: CommonSettings,
        service: str,
    ) -> None:
        self._broker = broker
        self._batch_max = settings.consumer_batch_max
        self._service = service
        self._session_timeout_ms = settings.consumer_session_timeout_ms
        self._fetch_max_wait_ms = settings.consumer_fetch_max_wait_ms
        self.offsets = OffsetCommitter(
            every=settings.consumer_commit_every,
            interval_s=settings.consumer_commit_interval_ms / 1000,
        )
        self._subscriptions: dict[str, _Subscription] = {}
        self.applier = Applier(
            sessions=sessions,
            service=service,
            max_attempts=settings.consumer_max_attempts,
            backoff_s=settings.consumer_backoff_s,
            dead_letter=self._dead_letter_ready,
        )
        self.dead_lettered_total = 0

    def group(
        self,
        group_id: str,
        *,
        inboxes: Mapping[str, str],
        fetch_min_bytes: int = 1,
        session_timeout_ms: int | None = None,
        fetch_max_wait_ms: int | None = None,
    ) -> None:
        """Declare `group_id` reading every topic of `inboxes` (topic -> inbox name).

        A group that reads several topics must be declared before its handlers are
        registered. The inbox name is what a processed message is recorded under: keeping
        a topic's former group id there means a group merged from per-topic groups never
        applies again what those groups applied. `fetch_min_bytes` above 1: the broker
        answers the group's fetches once that much is there or the fetch wait has passed.
        `session_timeout_ms`: this group's own failover time instead of the service's
        (its member heartbeats every third of it). `fetch_max_wait_ms`: this group's own
        idle long-poll instead of the service's (an empty fetch every that often).
        """
        if group_id in self._subscriptions:
            raise ValueError(f"consumer group {group_id} is already declared")
        if not inboxes:
            raise ValueError(f"consumer group {group_id} reads no topic")
        subscription = _Subscription(
            group_id,
            dict(inboxes),
            fetch_min_bytes=fetch_min_bytes,
            session_timeout_ms=session_timeout_ms,
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        self._subscriptions[group_id] = subscription
        self._subscribe(subscription)

    def on(
        self,
        event_type: str,
        *,
        topic: str,
        group_id: str,
        carrier: ClaimCarrier | None = None,
        prepare_run: RunPreparer | None = None,
        carry_run: RunCarrier | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated coroutine for `event_type` on `topic` in `group_id`.

        A group not declared with `group` reads this one topic, recorded in the inbox
        under the group's id. `carrier`: the handler's way to write a lone message's
        inbox claim in its own one statement, committed by itself (applying.py).
        `prepare_run`: its way to apply a run of its messages in a batch together
        (applying.py `RunPreparer`). `carry_run`: its way to write a batch's leading run
        with their inbox claims in one implicit transaction (applying.py `RunCarrier`).
        """

        def register(handler: Handler) -> Handler:
            subscription = self._subscriptions.get(group_id)
            if subscription is None:
                self.group(group_id, inboxes={topic: group_id})
                subscription = self._subscriptions[group_id]
            inbox = subscription.inboxes.get(topic)
            if inbox is None:
                raise ValueError(
                    f"consumer group {group_id} does not read {topic}: declare its topics "
                    "with EventConsumer.group before registering handlers"
                )
            if (topic, event_type) in subscription.routes:
                raise ValueError(f"{event_type} on {topic} already has a handler in {group_id}")
            subscription.routes[topic, event_type] = Route(
                handler, inbox, carrier, prepare_run, carry_run
            )
            return handler

        return register

    def _subscribe(self, subscription: _Subscription) -> None:
        session_timeout_ms = subscription.session_timeout_ms or self._session_timeout_ms
        fetch_max_wait_ms = subscription.fetch_max_wait_ms or self._fetch_max_wait_ms

        @self._broker.subscriber(
            *subscription.inboxes,
            group_id=subscription.group_id,
            # Offsets are ours to commit, in batches (OffsetCommitter), never before the
            # message's transaction committed.
            ack_policy=AckPolicy.MANUAL,
            listener=CommitBeforeRevoke(self.offsets),
            auto_offset_reset="earliest",
            title=subscription.group_id,
            decoder=_whole_message,
            # An idle member's fetch long-poll: the broker answers as soon as a record
            # arrives, so a longer wait costs no latency, only fewer empty fetches while
            # idle (aiokafka's 500 ms default: two per second and member). But after a
            # rebalance the survivor's first fetch of the dead member's partitions queues
            # on the connection behind the poll in flight, so failover takes the session
            # timeout plus up to this (benchmarks/recovery.py: 2.7 s at 2 s + 1 s, 5.6 s
            # at 2 s + 5 s).
            fetch_max_wait_ms=fetch_max_wait_ms,
            fetch_min_bytes=subscription.fetch_min_bytes,
            # aiokafka's fetch task also wakes every consumer_timeout_ms (200 ms) to look for
            # work it is told of anyway (a fetch answered, records taken, an assignment
            # changed: futures it waits on): five idle wake-ups a second. Once per long-poll.
            consumer_timeout_ms=fetch_max_wait_ms,
            # Failover after a crash: the group notices a silent member after the session
            # timeout. aiokafka heartbeats from a background task, so a handler that takes
            # longer than the session (a slow send, a database outage waited out) keeps its
            # partitions as long as the event loop runs; only max_poll_interval_ms (aiokafka's
            # 5 min default) bounds how long one message may hold them.
            session_timeout_ms=session_timeout_ms,
            # Kafka's rule of thumb: heartbeat every third of the session timeout, so two
            # lost heartbeats in a row do not yet cost the partitions. Each heartbeat is a
            # request the broker answers (~1.5 ms of its CPU on the local one): an idle
            # member's largest cost there.
            heartbeat_interval_ms=max(session_timeout_ms // 3, 100),
            # How long the coordinator waits for live members to rejoin a rebalance (it
            # defaults to the session timeout). A dead member is dropped on its session
            # timeout regardless, so a longer wait costs a crash nothing and spares a busy
            # instance from being evicted during a deploy's rebalances.
            rebalance_timeout_ms=max(session_timeout_ms, _REBALANCE_TIMEOUT_MS),
        )
        async def consume(message: Any) -> None:
            # Any: the decoder's message, passed through untouched (see _whole_message).
            behind = await self._fetched_behind(message.consumer)
            await self.apply_records(subscription, message.consumer, [message.raw_message, *behind])

    async def _fetched_behind(self, consumer: object) -> list[Any]:
        """Records Kafka has already fetched behind the one in hand, up to the batch cap;
        never waits for more (an empty buffer: none)."""
        if self._batch_max <= 1 or not isinstance(consumer, AIOKafkaConsumer):
            return []  # batches off, or FastStream's test broker
        try:
            # Each partition's records in offset order, after the one in hand. Only while
            # a rebalance is under way does this wait (for the new assignment), as the
            # next fetch would.
            fetched = await consumer.getmany(timeout_ms=0, max_records=self._batch_max - 1)
        except ConsumerStoppedError:
            return []  # stopping: the record in hand is applied alone
        except Exception as exc:
            # A partition's fetch error: the record in hand is applied alone, and the
            # partition's next fetch goes on.
            log.warning("consumer.fetch_failed", error_type=type(exc).__name__)
            return []
        return [record for records in fetched.values() for record in records]

    async def finish(self) -> None:
        """The service is stopping: commit processed offsets now and after every message."""
        await self.offsets.finish()

    async def apply_records(
        self, subscription: _Subscription, consumer: object, records: Sequence[Any]
    ) -> None:
        """Apply `records` (each partition's in offset order), in one transaction when
        several are to be applied; then their offsets are committed in due course.

        A record that could not be dead-lettered (the DLQ publish failed) is passed as
        FastStream's ACK policy did, and the first such error raised after the others.
        Stopped mid-way (cancelled): nothing is marked, so whoever reads the partitions
        next starts at the last committed offset and the inbox skips what was applied.
        """
        errors: list[Exception] = []
        ready: list[ReadyMessage] = []
        for record in records:
            try:
                item = await self._prepare(subscription, record)
            except Exception as exc:
                errors.append(exc)
                continue
            if item is not None:
                ready.append(item)
        if len(ready) > 1:
            errors += await self.applier.apply_batch(ready)
        elif ready:
            try:
                await self.applier.apply(ready[0])
            except Exception as exc:
                errors.append(exc)
        await self.offsets.processed_all(consumer, records)
        if errors:
            raise errors[0]

    async def process(self, subscription: _Subscription, message: KafkaMessage) -> None:
        """Handle one Kafka record: parse, dedupe, apply with retries, or dead-letter it."""
        item = await self._prepare(subscription, message.raw_message)
        if item is not None:
            await self.applier.apply(item)

    async def _prepare(self, subscription: _Subscription, record: Any) -> ReadyMessage | None:
        """`record` parsed and routed; None when there is nothing to apply (an event this
        group does not apply, or one it cannot parse, which is dead-lettered here)."""
        headers = decode_headers(record.headers or ())
        topic: str = record.topic
        message_id = headers.get("ce_id") or f"{topic}:{record.partition}:{record.offset}"
        with bound(message_id=message_id, topic=topic, group_id=subscription.group_id):
            event_type = headers.get("ce_type")
            if event_type and (topic, event_type) not in subscription.routes:
                # Not an event this group applies (rumor_control reads the alerts topic for
                # acknowledgements only): no need to parse it. A group that applies it
                # validates it, and dead-letters it if it is bad.
                return None
            try:
                envelope = parse_envelope(headers, record.value or b"")
            except UnknownEventType as exc:
                # Another service's newer event: not ours to understand, not an error.
                log.debug("consumer.event_skipped", event_type=exc.event_type)
                return None
            except InvalidEnvelope as exc:
                await self._dead_letter(subscription.group_id, record, headers, exc, attempts=1)
                return None
        route = subscription.routes[topic, envelope.type]
        return ReadyMessage(record, headers, message_id, envelope, route, subscription.group_id)

    async def _dead_letter_ready(
        self, item: ReadyMessage, error: BaseException, attempts: int
    ) -> None:
        await self._dead_letter(item.group_id, item.record, item.headers, error, attempts=attempts)

    async def _dead_letter(
        self,
        group_id: str,
        record: Any,
        headers: dict[str, str],
        error: BaseException,
        *,
        attempts: int,
    ) -> None:
        key = record.key
        dead = DeadLettered(
            dead_letter_id=uuid.uuid4(),
            original_topic=record.topic,
            original_partition=record.partition,
            original_offset=record.offset,
            original_key=b64encode(key) if key is not None else None,
            original_headers=tuple(headers.items()),
            original_value=b64encode(record.value) if record.value is not None else None,
            error_type=type(error).__name__,
            error_message=scrub_text(str(error))[:2000],
            attempts=attempts,
            consumer_group=group_id,
            failed_at=datetime.now(UTC),
        )
        outgoing = new_event(dead, source=f"aviso.{self._service}")
        # Published directly, not through the outbox: the offset is committed right
        # after, so the DLQ write must be acknowledged first or the message is lost.
        await self._broker.publish(
            outgoing.payload.encode(),
            topic=DLQ,
            key=outgoing.key.encode(),
            headers=outgoing.headers,
        )
        self.dead_lettered_total += 1
        CONSUMER_DEAD_LETTERED.labels(self._service, group_id).inc()
        log.error(
            "consumer.dead_lettered",
            attempts=attempts,
            error_type=type(error).__name__,
            partition=record.partition,
            offset=record.offset,
        )

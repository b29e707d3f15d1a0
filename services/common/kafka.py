"""Kafka for Aviso services: the broker, the outbox publisher and resilient consumers.

- Producer: `acks=all` and idempotence on, so an acknowledged event is on every
  in-sync replica and a producer retry cannot write it twice.
- Consumer: an offset is committed only after the handler's transaction committed
  (never auto-commit-first), in batches (offsets.py: every N messages or T ms, before
  a rebalance and on stop), since the inbox already makes a re-delivery a no-op.
  A failing message is retried K times with exponential backoff, each try in a fresh
  transaction; then it goes to `aviso.dlq.v1` with the error and its original
  headers, and the partition moves on.
  A message that cannot be parsed at all goes to the DLQ at once: retrying it would
  fail the same way.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import schemas  # noqa: F401 - registers every event model
from schemas.base import EventData, UnknownEventType
from schemas.dlq import DeadLettered, b64encode
from schemas.topics import DLQ
from services.common.cloudevents import (
    Envelope,
    InvalidEnvelope,
    correlation_scope,
    decode_headers,
    new_event,
    parse_envelope,
)
from services.common.db import UnitOfWork
from services.common.inbox import claim_message
from services.common.logging import bound, faststream_logger, get_logger, scrub_text
from services.common.metrics import CONSUMER_DEAD_LETTERED, CONSUMER_PROCESSED
from services.common.offsets import CommitBeforeRevoke, OffsetCommitter
from services.common.outbox import OutboxRow
from services.common.outbox.ordering import HeldBehind, one_key_at_a_time
from services.common.settings import CommonSettings

__all__ = [
    "EventConsumer",
    "Handler",
    "KafkaOutboxPublisher",
    "database_unreachable",
    "make_broker",
    "outbox_publisher",
    "ping_broker",
]

log = get_logger(__name__)

_REBALANCE_TIMEOUT_MS = 10_000

# A handler applies one event inside the consumer's unit of work and never commits it:
# the consumer commits (with the inbox row) after the handler returned.
Handler = Callable[[Envelope[Any], UnitOfWork], Awaitable[None]]


def make_broker(settings: CommonSettings, *, service: str) -> KafkaBroker:
    """The service's one broker: durable producer, structured logs, graceful stop."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"aviso-{service}",
        acks="all",
        enable_idempotence=True,
        # While the cluster is away the client retries every backoff and logs each try;
        # half a second keeps an outage from flooding the logs at no cost to recovery.
        retry_backoff_ms=500,
        graceful_timeout=settings.shutdown_grace_s,
        logger=faststream_logger(),
        # FastStream's own "Received"/"Processed" line per message at DEBUG: two log
        # records per message and consumer cost more than the handler's own work; our
        # consumer logs what matters (retries, duplicates, dead letters) itself.
        log_level=logging.DEBUG,
        description=f"Aviso {service}",
    )


class KafkaOutboxPublisher:
    """The relay's publisher: a batch in one produce round, each row acknowledged (acks=all).

    `publish_batch` hands every record to the producer first and then awaits all the
    acknowledgements, so a batch costs one produce request per partition leader instead
    of a publish call per row. Records of one partition keep the order they were handed
    over in (idempotent producer), and the relay hands them over in id order. A key whose
    record the producer refuses at hand-over hands over none of its later rows; before
    the producer is connected a key's rows go one after another. (Whether a key's later
    record may follow one that failed after hand-over is the relay's concern: it sends a
    key's rows in waves, `services.common.outbox.ordering`.)
    """

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def __call__(self, row: OutboxRow) -> None:
        """Send one row through the broker and wait for its acknowledgement."""
        await self._broker.publish(
            row.payload.encode("utf-8"),
            topic=row.topic,
            key=row.key.encode("utf-8"),
            headers=row.headers,
            correlation_id=row.headers.get("ce_correlationid"),
        )

    async def publish_batch(self, rows: Sequence[OutboxRow]) -> list[BaseException | None]:
        """Send every row, then await every acknowledgement; per row None or its error."""
        producer = self._producer()
        if producer is None:  # not connected yet, or a test broker: one publish per row
            return await one_key_at_a_time(rows, self)
        pending: list[asyncio.Future[Any] | BaseException] = []
        refused: set[str] = set()
        for row in rows:
            if row.key in refused:
                pending.append(HeldBehind())
                continue
            try:
                pending.append(
                    await producer.send(
                        row.topic,
                        value=row.payload.encode("utf-8"),
                        key=row.key.encode("utf-8"),
                        headers=_record_headers(row),
                    )
                )
            except Exception as exc:  # this row and its key's later ones (e.g. buffer full)
                pending.append(exc)
                refused.add(row.key)
        acks = await asyncio.gather(
            *(p for p in pending if not isinstance(p, BaseException)), return_exceptions=True
        )
        outcomes = iter(acks)
        return [
            p if isinstance(p, BaseException) else _error_or_none(next(outcomes)) for p in pending
        ]

    def _producer(self) -> Any:
        """The broker's aiokafka producer once connected (so both share one connection)."""
        state = getattr(self._broker.config.producer, "_producer", None)
        producer = getattr(state, "producer", None)
        return producer if hasattr(producer, "send") else None


def _record_headers(row: OutboxRow) -> list[tuple[str, bytes]]:
    # The same headers as a broker.publish of the row: content type, correlation id, the
    # CloudEvents headers; so consumers see no difference between the two paths.
    headers = {"content-type": "", **row.headers}
    correlation_id = row.headers.get("ce_correlationid")
    if correlation_id:
        headers = {"content-type": "", "correlation_id": correlation_id, **row.headers}
    return [(name, (value or "").encode()) for name, value in headers.items()]


def _error_or_none(result: object) -> BaseException | None:
    return result if isinstance(result, BaseException) else None


def outbox_publisher(broker: KafkaBroker) -> KafkaOutboxPublisher:
    """The relay's publisher over the service's broker (batches in one produce round)."""
    return KafkaOutboxPublisher(broker)


async def ping_broker(broker: KafkaBroker, *, timeout: float = 3.0) -> bool:
    """True when the cluster answers a metadata request within `timeout` seconds."""
    try:
        return bool(await broker.ping(timeout=timeout))
    except Exception:  # a readiness probe reports, it does not raise
        return False


def database_unreachable(exc: BaseException) -> bool:
    """True when `exc` means the database could not be reached (not a bug in the handler).

    Follows explicit causes and unsuppressed contexts only, so an error that a sender
    re-raised `from None` (a webhook or SMTP failure) is judged as itself.
    """
    import sqlalchemy.exc

    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return False
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sqlalchemy.exc.OperationalError):
            orig = current.orig
            if orig is not None and type(orig).__module__.startswith(("sqlite3", "aiosqlite")):
                # On SQLite this class also means "no such table": only a lock or a
                # file that cannot be opened is an outage.
                text = str(orig).lower()
                return "locked" in text or "unable to open" in text
            return True
        if isinstance(current, sqlalchemy.exc.InterfaceError | sqlalchemy.exc.TimeoutError):
            return True
        if isinstance(current, ConnectionError | TimeoutError) or type(current).__name__ in (
            "CannotConnectNowError",
            "ConnectionDoesNotExistError",
            "ConnectionFailureError",
        ):
            return True
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return False


async def _whole_message(message: StreamMessage[Any]) -> StreamMessage[Any]:
    # The handler's argument is the message itself, raw: FastStream would json-decode an
    # application/json body before our handler runs, and a body that fails to decode
    # must reach the DLQ through us instead. Taken as the body rather than through
    # FastStream's `Context`, whose resolver is synchronous and so runs in a worker
    # thread for every message (a thread hop and ~10 % of a consumer's CPU, measured).
    return message


@dataclass
class _Route:
    handler: Handler
    inbox: str


@dataclass
class _Subscription:
    """One consumer group: one member per instance, reading all of its topics."""

    group_id: str
    # topic -> the name its messages are recorded under in the inbox
    inboxes: dict[str, str]
    routes: dict[tuple[str, str], _Route] = field(default_factory=dict)


class EventConsumer:
    """Routes a group's events by topic and `ce_type` to handlers, idempotently, with a DLQ.

    Each handler runs inside one transaction that also records the message id in the
    inbox; the offset is committed after that transaction commits.

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
        self._sessions = sessions
        self._max_attempts = settings.consumer_max_attempts
        self._backoff_s = settings.consumer_backoff_s
        self._service = service
        self._session_timeout_ms = settings.consumer_session_timeout_ms
        self._fetch_max_wait_ms = settings.consumer_fetch_max_wait_ms
        self.offsets = OffsetCommitter(
            every=settings.consumer_commit_every,
            interval_s=settings.consumer_commit_interval_ms / 1000,
        )
        self._subscriptions: dict[str, _Subscription] = {}
        self.processed_total = 0
        self.dead_lettered_total = 0

    def group(self, group_id: str, *, inboxes: Mapping[str, str]) -> None:
        """Declare `group_id` reading every topic of `inboxes` (topic -> inbox name).

        A group that reads several topics must be declared before its handlers are
        registered. The inbox name is what a processed message is recorded under: keeping
        a topic's former group id there means a group merged from per-topic groups never
        applies again what those groups applied.
        """
        if group_id in self._subscriptions:
            raise ValueError(f"consumer group {group_id} is already declared")
        if not inboxes:
            raise ValueError(f"consumer group {group_id} reads no topic")
        subscription = _Subscription(group_id, dict(inboxes))
        self._subscriptions[group_id] = subscription
        self._subscribe(subscription)

    def on(self, event_type: str, *, topic: str, group_id: str) -> Callable[[Handler], Handler]:
        """Register the decorated coroutine for `event_type` on `topic` in `group_id`.

        A group not declared with `group` reads this one topic, recorded in the inbox
        under the group's id.
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
            subscription.routes[topic, event_type] = _Route(handler, inbox)
            return handler

        return register

    def _subscribe(self, subscription: _Subscription) -> None:
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
            fetch_max_wait_ms=self._fetch_max_wait_ms,
            # aiokafka's fetch task also wakes every consumer_timeout_ms (200 ms) to look for
            # work it is told of anyway (a fetch answered, records taken, an assignment
            # changed: futures it waits on): five idle wake-ups a second. Once per long-poll.
            consumer_timeout_ms=self._fetch_max_wait_ms,
            # Failover after a crash: the group notices a silent member after the session
            # timeout. aiokafka heartbeats from a background task, so a handler that takes
            # longer than the session (a slow send, a database outage waited out) keeps its
            # partitions as long as the event loop runs; only max_poll_interval_ms (aiokafka's
            # 5 min default) bounds how long one message may hold them.
            session_timeout_ms=self._session_timeout_ms,
            # Kafka's rule of thumb: heartbeat every third of the session timeout, so two
            # lost heartbeats in a row do not yet cost the partitions.
            heartbeat_interval_ms=max(self._session_timeout_ms // 3, 100),
            # How long the coordinator waits for live members to rejoin a rebalance (it
            # defaults to the session timeout). A dead member is dropped on its session
            # timeout regardless, so a longer wait costs a crash nothing and spares a busy
            # instance from being evicted during a deploy's rebalances.
            rebalance_timeout_ms=max(self._session_timeout_ms, _REBALANCE_TIMEOUT_MS),
        )
        async def consume(message: Any) -> None:
            # Any: the decoder's message, passed through untouched (see _whole_message).
            try:
                await self.process(subscription, message)
            except asyncio.CancelledError:
                raise  # stopped mid-message: not done, so not committed
            except Exception:
                # As FastStream's ACK policy did: the message is passed, not retried
                # forever (process() itself retries, dead-letters or waits out outages).
                await self.offsets.processed(message.consumer, message.raw_message)
                raise
            await self.offsets.processed(message.consumer, message.raw_message)

    async def finish(self) -> None:
        """The service is stopping: commit processed offsets now and after every message."""
        await self.offsets.finish()

    async def process(self, subscription: _Subscription, message: KafkaMessage) -> None:
        """Handle one Kafka record: parse, dedupe, apply with retries, or dead-letter it."""
        record = message.raw_message
        body: bytes = record.value or b""  # type: ignore[union-attr]
        headers = decode_headers(record.headers or ())  # type: ignore[union-attr]
        topic: str = record.topic  # type: ignore[union-attr]
        message_id = headers.get("ce_id") or f"{topic}:{record.partition}:{record.offset}"  # type: ignore[union-attr]
        with bound(message_id=message_id, topic=topic, group_id=subscription.group_id):
            event_type = headers.get("ce_type")
            if event_type and (topic, event_type) not in subscription.routes:
                # Not an event this group applies (rumor_control reads the alerts topic for
                # acknowledgements only): no need to parse it. A group that applies it
                # validates it, and dead-letters it if it is bad.
                return
            try:
                envelope = parse_envelope(headers, body)
            except UnknownEventType as exc:
                # Another service's newer event: not ours to understand, not an error.
                log.debug("consumer.event_skipped", event_type=exc.event_type)
                return
            except InvalidEnvelope as exc:
                await self._dead_letter(subscription, message, headers, exc, attempts=1)
                return
            route = subscription.routes[topic, envelope.type]
            with (
                correlation_scope(envelope.correlation_id),
                bound(correlation_id=envelope.correlation_id, event_type=envelope.type),
            ):
                await self._apply(subscription, route, envelope, message, headers)

    async def _apply(
        self,
        subscription: _Subscription,
        route: _Route,
        envelope: Envelope[EventData],
        message: KafkaMessage,
        headers: dict[str, str],
    ) -> None:
        attempt = 0
        outage_delay = self._backoff_s
        while True:
            attempt += 1
            try:
                async with UnitOfWork(self._sessions) as uow:
                    first_time = await claim_message(
                        uow.session,
                        consumer=route.inbox,
                        message_id=envelope.id,
                        topic=message.raw_message.topic,  # type: ignore[union-attr]
                    )
                    if not first_time:
                        log.info("consumer.duplicate_skipped")
                        return
                    await route.handler(envelope, uow)
                    await uow.commit()
                self.processed_total += 1
                CONSUMER_PROCESSED.labels(self._service, subscription.group_id).inc()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if database_unreachable(exc):
                    # An outage is not this message's fault: wait it out without spending
                    # attempts, holding the partition (the offset stays uncommitted), so
                    # nothing lands in the DLQ because PostgreSQL restarted.
                    attempt -= 1
                    outage_delay = min(max(outage_delay * 2, 0.1), 5.0)
                    log.warning(
                        "consumer.database_unreachable",
                        retry_in_s=outage_delay,
                        error_type=type(exc).__name__,
                    )
                    await asyncio.sleep(outage_delay)
                    continue
                if attempt >= self._max_attempts:
                    await self._dead_letter(subscription, message, headers, exc, attempts=attempt)
                    return
                delay = self._backoff_s * (2 ** (attempt - 1))
                log.warning(
                    "consumer.retrying",
                    attempt=attempt,
                    max_attempts=self._max_attempts,
                    delay_s=delay,
                    error_type=type(exc).__name__,
                    error=scrub_text(str(exc)),
                )
                await asyncio.sleep(delay)

    async def _dead_letter(
        self,
        subscription: _Subscription,
        message: KafkaMessage,
        headers: dict[str, str],
        error: BaseException,
        *,
        attempts: int,
    ) -> None:
        record = message.raw_message
        key = record.key  # type: ignore[union-attr]
        dead = DeadLettered(
            dead_letter_id=uuid.uuid4(),
            original_topic=record.topic,  # type: ignore[union-attr]
            original_partition=record.partition,  # type: ignore[union-attr]
            original_offset=record.offset,  # type: ignore[union-attr]
            original_key=b64encode(key) if key is not None else None,
            original_headers=tuple(headers.items()),
            original_value=b64encode(record.value) if record.value is not None else None,  # type: ignore[union-attr]
            error_type=type(error).__name__,
            error_message=scrub_text(str(error))[:2000],
            attempts=attempts,
            consumer_group=subscription.group_id,
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
        CONSUMER_DEAD_LETTERED.labels(self._service, subscription.group_id).inc()
        log.error(
            "consumer.dead_lettered",
            attempts=attempts,
            error_type=type(error).__name__,
            partition=record.partition,  # type: ignore[union-attr]
            offset=record.offset,  # type: ignore[union-attr]
        )

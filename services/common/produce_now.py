"""A produce request written in the caller's own turn, not three loop turns later.

aiokafka (0.14, pinned) hands a batch to its sender task: `send_batch` appends it to the
accumulator and resolves the future the sender waits on; the sender's `asyncio.wait`
wakes it one turn later (its callback, then the task), the sender drains the batch and
spawns a task per broker, which writes the request one more turn later. At 10/s every
one of those turns queues behind whatever else is ready: at intake's commit, the rest of
the request that writes the 201 (0.5-0.65 ms, docs/performance.md). Here the caller
does the sender's step itself: it drains the accumulator as the sender would (the same
call, so sequence numbers and a broker's one request in flight are the sender's own
rules), writes each broker's request on its connection at once, and leaves a task to
read the answer through the sender's own handler (retries, errors, the batches'
futures). When that task ends it wakes the sender, as the sender's own tasks do, so a
batch held behind the request in flight goes next.

Anything this cannot do now (a producer not started, a transactional one, no producer
id yet, a broker without an open connection) is left to the sender as before: a
drained batch for such a broker goes to the sender's own request task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import aiokafka
from aiokafka.client import ConnectionGroup
from aiokafka.conn import CloseReason
from aiokafka.errors import KafkaError, RequestTimedOutError
from aiokafka.producer.sender import SendProduceReqHandler
from aiokafka.structs import TopicPartition

__all__ = ["WRITTEN_FOR", "append_batches", "write_now"]

# The aiokafka whose sender this does by hand (the version pinned in pyproject.toml).
# Under any other, everything is left to aiokafka's own sender, as if this were not here:
# an upgrade costs the saved turns until this is checked against it, never a batch.
WRITTEN_FOR = "0.14.0"
_FITS = aiokafka.__version__ == WRITTEN_FOR

# The tasks reading answers (the loop holds tasks weakly).
_reading: set[asyncio.Task[None]] = set()


def append_batches(
    producer: Any, batches: Sequence[tuple[str, int, Any]]
) -> list[asyncio.Future[Any]] | None:
    """Append (topic, partition, batch builder) to the producer's accumulator without
    waiting; each batch's delivery future, or None (nothing appended) when one of them
    would have to wait (a batch of its partition still queued, no metadata yet)."""
    if not _FITS:
        return None
    accumulator = producer._message_accumulator
    cluster = producer.client.cluster
    if accumulator._closed or accumulator._exception is not None:
        return None
    parts = [TopicPartition(topic, partition) for topic, partition, _ in batches]
    for tp in parts:
        known = cluster.partitions_for_topic(tp.topic)
        if known is None or tp.partition not in known or accumulator._batches.get(tp):
            return None
    return [
        asyncio.shield(accumulator._append_batch(builder, tp).future)
        for tp, (_, _, builder) in zip(parts, batches, strict=True)
    ]


def write_now(producer: Any) -> bool:
    """Drain the accumulator and write each broker's produce request now, as the sender
    task would a few turns later; whether it did (False: left to the sender)."""
    if not _FITS:
        return False
    sender: Any = getattr(producer, "_sender", None)  # None: not aiokafka's (a test's fake)
    task = None if sender is None else sender.sender_task
    if task is None or task.done():
        return False
    txn = sender._txn_manager
    if txn is not None and (txn.transactional_id is not None or not txn.has_pid()):
        return False
    drained, _unknown = producer._message_accumulator.drain_by_nodes(
        ignore_nodes=sender._in_flight, muted_partitions=sender._muted_partitions
    )
    # (Unknown leaders: the drain resolved the sender's waiter; it asks for metadata.)
    for node_id, node_batches in drained.items():
        sender._in_flight.add(node_id)
        sender._muted_partitions.update(node_batches)
        reading = _written(sender, node_id, node_batches)
        if reading is None:  # no open connection: the sender's own request task
            reading = sender._send_produce_req(node_id, node_batches)
        else:
            reading = _read_answer(sender, node_id, node_batches, reading)
        spawned = asyncio.get_running_loop().create_task(reading)
        _reading.add(spawned)
        spawned.add_done_callback(lambda done: _ended(sender, done))
    return True


def _written(sender: Any, node_id: int, node_batches: dict[Any, Any]) -> Any:
    """The request's handler, written on the broker's open connection; None if none is."""
    conn = sender.client._conns.get((node_id, ConnectionGroup.DEFAULT))
    if conn is None or not conn.connected():
        return None
    handler = SendProduceReqHandler(sender, node_batches)
    request = handler.create_request()
    try:
        answer = conn.send(request, expect_response=True)
    except KafkaError as exc:  # the connection broke: the handler's error path retries
        answer = exc
    return handler, request, conn, answer


async def _read_answer(
    sender: Any, node_id: int, node_batches: dict[Any, Any], written: Any
) -> None:
    handler, request, conn, answer = written
    # The handler's own `do`, its request already on the wire: it awaits the answer
    # where it would have sent, so retries, errors and the batches' futures are its own.
    handler.create_request = lambda: request
    handler._client = _Answered(sender.client, conn, answer)
    try:
        await handler.do(node_id)
    finally:
        sender._in_flight.discard(node_id)
        for tp in node_batches:
            sender._muted_partitions.discard(tp)


class _Answered:
    """The client as the handler sees it, whose `send` awaits the answer already asked for."""

    def __init__(self, client: Any, conn: Any, answer: Any) -> None:
        self._client = client
        self._conn = conn
        self._answer = answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def send(self, _node_id: int, _request: Any) -> Any:
        if isinstance(self._answer, BaseException):
            raise self._answer
        try:
            return await self._answer
        except TimeoutError as exc:  # as the client's `send`: renew the connection
            self._conn.close(reason=CloseReason.CONNECTION_TIMEOUT)
            raise RequestTimedOutError() from exc


def _ended(sender: Any, task: asyncio.Task[None]) -> None:
    _reading.discard(task)
    # The sender's own tasks wake it when they end (a broker free for its next batch).
    waiter = sender._message_accumulator._waiter_future
    if not waiter.done():
        waiter.set_result(None)
    if not task.cancelled() and task.exception() is not None:
        # As an error in the sender's own task: every pending batch fails.
        with contextlib.suppress(Exception):
            sender._fail_all(task)

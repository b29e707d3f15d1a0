"""Waiting for the local broker to answer, and creating the topics Aviso uses."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from deploy.local.common import InfraError, pid_alive, say, wait_for_port

__all__ = ["DEFAULT_READY_TIMEOUT", "ensure_topics", "wait_until_ready"]

DEFAULT_READY_TIMEOUT = 60.0


def _say(message: str) -> None:
    say("kafka", message)


async def wait_until_ready(
    bootstrap: str, *, pid: int | None = None, within: float = DEFAULT_READY_TIMEOUT
) -> float:
    """Wait until the broker answers a metadata request with a live broker; return seconds waited.

    ``pid`` (when given) is watched so a broker that dies fails fast instead of
    at the deadline.
    """
    started = time.monotonic()
    deadline = started + within
    host, _, port_text = bootstrap.rpartition(":")

    def alive() -> bool:
        return pid is None or pid_alive(pid)

    # Cheap TCP probe first: aiokafka logs an error for every refused bootstrap.
    opened = await asyncio.to_thread(
        wait_for_port, int(port_text), host=host, timeout=within, alive=alive
    )
    if not opened:
        if not alive():
            raise InfraError(f"broker process {pid} exited before opening {bootstrap}")
        raise InfraError(f"broker did not open {bootstrap} within {within:.0f} s")

    last_error = "no answer yet"
    next_report = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if not alive():
            raise InfraError(f"broker process {pid} exited while starting")
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            # Brokers appear in metadata only once registered and unfenced.
            if cluster.get("brokers") and cluster.get("controller_id", -1) != -1:
                return time.monotonic() - started
            last_error = f"metadata without a live broker: {cluster}"
        except Exception as error:  # any client error means "not yet"; retried until the deadline
            last_error = f"{type(error).__name__}: {error}"
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        if time.monotonic() >= next_report:
            _say(f"waiting for metadata from {bootstrap} … {time.monotonic() - started:.0f} s")
            next_report = time.monotonic() + 5.0
        await asyncio.sleep(0.25)
    raise InfraError(
        f"broker on {bootstrap} did not answer metadata within {within:.0f} s ({last_error})"
    )


async def ensure_topics(
    bootstrap: str,
    topics: Sequence[str],
    partitions: int = 3,
    *,
    replication_factor: int = 1,
    within: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names actually created.

    Waits until every topic has a leader for each partition, so callers can
    produce and consume right away.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in dict.fromkeys(topics) if name not in existing]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(
                [NewTopic(name, partitions, replication_factor) for name in missing],
                timeout_ms=int(within * 1000),
            )
            for topic_error in response.topic_errors:
                name, code = topic_error[0], topic_error[1]
                if code == 0:
                    created.append(name)
                elif code != TopicAlreadyExistsError.errno:  # created concurrently: fine
                    message = topic_error[2] if len(topic_error) > 2 else ""
                    raise InfraError(f"could not create topic {name}: {for_code(code)} {message}")
        await _wait_for_leaders(admin, list(dict.fromkeys(topics)), within=within)
        return created
    finally:
        await admin.close()


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, topics: list[str], *, within: float
) -> None:
    deadline = time.monotonic() + within
    pending = list(topics)
    while pending:
        described = await admin.describe_topics(pending)
        pending = [
            item["topic"]
            for item in described
            if item["error_code"] != 0
            or not item["partitions"]
            or any(part["leader"] < 0 for part in item["partitions"])
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise InfraError(f"topics without a leader after {within:.0f} s: {pending}")
        await asyncio.sleep(0.2)

"""The resources one service process holds, started and stopped in the right order.

A service's composition root (`services/<name>/app.py`) builds a `ServiceRuntime`,
registers its Kafka handlers and background workers on it, and hands it to
`create_http_app`. Start-up: migrate, connect the broker, start the outbox relay and
workers (among them the messaging tables' retention, retention.py), then consume.
Shutdown (SIGTERM): stop consuming and let in-flight handlers
finish (their offsets are committed), stop workers, publish what the outbox still
holds, close the producer, close the database pools.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import InvalidSessionTimeoutError
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.common.auth import TokenVerifier
from services.common.db import make_engine, make_session_factory, ping
from services.common.kafka import EventConsumer, make_broker, outbox_publisher, ping_broker
from services.common.logging import get_logger
from services.common.migrations import upgrade
from services.common.outbox import OutboxRelay
from services.common.retention import MessagingRetention
from services.common.settings import CommonSettings

__all__ = [
    "DevelopmentSecretsRefused",
    "Fact",
    "ServiceRuntime",
    "Worker",
    "refuse_development_secrets",
]

log = get_logger(__name__)

# A background worker runs until the event is set, then returns.
Worker = Callable[[asyncio.Event], Awaitable[None]]
# A fact for `/internal/ready`: a small JSON-able mapping read when the probe asks.
Fact = Callable[[], Awaitable[dict[str, Any]]]


class DevelopmentSecretsRefused(RuntimeError):
    """A service was asked to run, outside development mode, on a published secret."""


def refuse_development_secrets(settings: CommonSettings, *, service: str) -> None:
    """Raise unless every secret is the operator's own (or development mode is on).

    The development values are published in this repository: with them anyone can forge
    acknowledgement links, webhooks and fingerprints. So a service says which settings to
    change rather than running quietly on them.
    """
    if settings.development_mode:
        return
    names = settings.development_secrets()
    if names:
        log.error("service.development_secrets_refused", service=service, settings=names)
        raise DevelopmentSecretsRefused(
            f"{', '.join(names)} hold development values; set your own secrets, "
            "or AVISO_DEVELOPMENT_MODE=true on a development machine"
        )


@dataclass
class _WorkerTask:
    name: str
    worker: Worker
    task: asyncio.Task[None] | None = None


class ServiceRuntime:
    """Database, broker, consumer, outbox relay and workers of one service."""

    def __init__(
        self,
        *,
        name: str,
        settings: CommonSettings,
        component: str | None = None,
        prunes_messaging: bool = True,
    ) -> None:
        """`prunes_messaging`: whether this process runs the outbox and inbox retention
        (retention.py); one process of a group of workers sharing a schema is enough."""
        # First of all, so no process (and no subclass's start-up step) runs on them.
        refuse_development_secrets(settings, service=name)
        self.name = name
        self.component = component or name
        self.settings = settings
        self.source = f"aviso.{name}"
        self.engine: AsyncEngine = make_engine(settings, self.component)
        self.sessions: async_sessionmaker[AsyncSession] = make_session_factory(self.engine)
        self.auth_engine: AsyncEngine = make_engine(settings, "auth")
        self.token_verifier = TokenVerifier(
            make_session_factory(self.auth_engine), ttl_s=settings.auth_cache_ttl_s
        )
        self.broker: KafkaBroker = make_broker(settings, service=name)
        self.consumer = EventConsumer(
            broker=self.broker, sessions=self.sessions, settings=settings, service=name
        )
        self.relay = OutboxRelay(
            engine=self.engine,
            publish=outbox_publisher(self.broker),
            component=self.component,
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
            claim_ttl_s=settings.outbox_claim_ttl_s,
        )
        self._workers: list[_WorkerTask] = []
        self._stop_workers = asyncio.Event()
        self._facts: dict[str, Fact] = {}
        # Sent outbox rows and old inbox claims would otherwise grow without end.
        self.retention = MessagingRetention(
            self.sessions,
            outbox_retention_s=settings.outbox_retention_s,
            inbox_retention_s=settings.inbox_retention_s,
            interval_s=settings.messaging_prune_interval_s,
        )
        if prunes_messaging:
            self.add_worker("messaging-retention", self.retention.run)
        self.started = False

    def add_worker(self, name: str, worker: Worker) -> None:
        """Run `worker` in the background while the service runs (timers, sweepers)."""
        self._workers.append(_WorkerTask(name, worker))

    def add_fact(self, name: str, fact: Fact) -> None:
        """Report `fact()` under `name` in `/internal/ready` (state an operator compares across
        services; it never decides readiness and never names a person)."""
        self._facts[name] = fact

    async def start(self, *, migrate: bool = True) -> None:
        """Migrate, connect and start consuming."""
        if migrate:
            await upgrade(self.settings, "auth")
            await upgrade(self.settings, self.component)
        await self.broker.connect()
        await self.relay.start()
        self._stop_workers.clear()
        for worker in self._workers:
            worker.task = asyncio.create_task(self._run_worker(worker), name=worker.name)
        try:
            await self.broker.start()
        except InvalidSessionTimeoutError:
            # The quick failover needs the cluster's consent; say which setting to change
            # instead of leaving the operator with Kafka's bare error code.
            log.error(
                "kafka.session_timeout_refused",
                session_timeout_ms=self.settings.consumer_session_timeout_ms,
                hint=(
                    "lower group.min.session.timeout.ms on the brokers to at most this, or "
                    "raise AVISO_CONSUMER_SESSION_TIMEOUT_MS to the brokers' minimum"
                ),
            )
            raise
        self.started = True
        log.info("service.started", service=self.name)

    async def _run_worker(self, worker: _WorkerTask) -> None:
        while not self._stop_workers.is_set():
            try:
                await worker.worker(self._stop_workers)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                # A worker owns its retries; this only keeps a bug from stopping it for good.
                log.exception("worker.crashed", worker=worker.name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_workers.wait(), timeout=1.0)

    async def stop(self) -> None:
        """Stop in order so that nothing acknowledged is lost."""
        log.info("service.stopping", service=self.name)
        # 1. No new messages; in-flight handlers finish and commit their offsets (the
        # batched ones now, each later one as it finishes).
        with contextlib.suppress(Exception):
            await self.consumer.finish()
        for subscriber in self.broker.subscribers:
            with contextlib.suppress(Exception):
                await subscriber.stop()
        # 2. Workers finish their current step.
        self._stop_workers.set()
        tasks = [w.task for w in self._workers if w.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_s)
            for task in pending:
                task.cancel()
        # 3. Publish what is committed but unsent, then stop the relay and producer.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.relay.relay_once(), timeout=5)
        await self.relay.stop()
        with contextlib.suppress(Exception):
            await self.broker.stop()
        await self.engine.dispose()
        await self.auth_engine.dispose()
        self.started = False
        log.info("service.stopped", service=self.name)

    async def readiness(self) -> dict[str, Any]:
        """Check the database and the broker; `ready` is True only when both answer."""
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(ping(self.engine), timeout=3)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unavailable: {type(exc).__name__}"
        checks["kafka"] = "ok" if await ping_broker(self.broker) else "unavailable"
        report: dict[str, Any] = {
            "ready": all(v == "ok" for v in checks.values()),
            "checks": checks,
        }
        if self._facts and checks["database"] == "ok":
            report["facts"] = {name: await _read(fact) for name, fact in self._facts.items()}
        return report


async def _read(fact: Fact) -> dict[str, Any]:
    try:
        return await asyncio.wait_for(fact(), timeout=3)
    except Exception as exc:
        return {"unavailable": type(exc).__name__}

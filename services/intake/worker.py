"""Intake's background workers: the sweeper and the audit sealer.

The sweeper expires, purges and prunes until stopped: it is the caller of the sweeping
use cases, one unit of work per batch, committed after the use case returns. The
sealer chains the audit entries requests wrote (audit.py) every
`deps.audit_seal_interval_s`, a batch per round, so requests never wait on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.common.logging import get_logger
from services.common.problems import is_database_unavailable
from services.common.runtime import Worker
from services.intake import sweeping
from services.intake.audit import SealRaced
from services.intake.deps import IntakeDeps
from services.intake.unit_of_work import IntakeUoW

__all__ = ["Step", "SweepReport", "seal_audit", "sealer", "sweep", "sweep_step", "sweeper"]

log = get_logger(__name__)


class Step(Protocol):
    """A sweeping use case: one batch in the given unit of work; how many it handled."""

    async def __call__(self, uow: IntakeUoW, /, *, deps: IntakeDeps, now: datetime) -> int: ...


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did."""

    expired: int
    purged: int
    pruned: int


async def sweep_step(deps: IntakeDeps, step: Step, *, now: datetime) -> int:
    """Run one batch of `step` in its own unit of work and commit it."""
    async with deps.unit_of_work() as uow:
        count = await step(uow, deps=deps, now=now)
        await uow.commit()
    return count


async def sweep(deps: IntakeDeps, *, now: datetime) -> SweepReport:
    """Expire, purge and prune; each batch in its own transaction, until none is left."""
    expired = purged = 0
    while (count := await sweep_step(deps, sweeping.expire_notices, now=now)) > 0:
        expired += count
    while (count := await sweep_step(deps, sweeping.purge_restricted, now=now)) > 0:
        purged += count
    pruned = await sweep_step(deps, sweeping.prune_records, now=now)
    return SweepReport(expired, purged, pruned)


def sweeper(deps: IntakeDeps) -> Worker:
    """A worker that sweeps every `deps.sweep_interval_s` until stopped."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                report = await sweep(deps, now=deps.clock())
                if report.expired or report.purged:
                    log.info(
                        "intake.sweep_done",
                        expired=report.expired,
                        purged=report.purged,
                        pruned=report.pruned,
                    )
            except Exception as exc:
                if not is_database_unavailable(exc):
                    raise  # a bug: the runtime logs it once and restarts the worker
                # An outage is not a bug: one line, then try again next round.
                log.warning("intake.sweep_skipped", error_type=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=deps.sweep_interval_s)

    return run


async def seal_audit(deps: IntakeDeps, *, batch_size: int = 500) -> int:
    """Seal every audit entry written so far, a batch per round; how many.

    A round another sealer wrote first from the same head (another instance's: audit.py
    `SealRaced`) wrote nothing: the next round reads the new head and what is left."""
    sealed = 0
    while True:
        try:
            async with deps.unit_of_work() as uow:
                count = await uow.audit.seal(key=deps.audit_key, batch_size=batch_size)
                await uow.commit()
        except SealRaced:
            continue
        sealed += count
        if count < batch_size:
            return sealed


def sealer(deps: IntakeDeps) -> Worker:
    """A worker that seals the audit chain every `deps.audit_seal_interval_s` until stopped."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await seal_audit(deps)
            except Exception as exc:
                if not is_database_unavailable(exc):
                    raise  # a bug: the runtime logs it once and restarts the worker
                log.warning("intake.audit_seal_skipped", error_type=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=deps.audit_seal_interval_s)
        # Seal what the last requests wrote before the process goes.
        with contextlib.suppress(Exception):
            await seal_audit(deps)

    return run

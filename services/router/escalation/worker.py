"""The escalation worker: fires durable timers stored on the alerts, on time, exactly once.

Timers live in the database (`alerts.next_fire_at`), not in memory, so a restarted
router resumes them and any instance may fire any alert's timer. Each round fires every
due timer (one transaction each), resolves alerts whose operation window ended, then
sleeps until the nearest known deadline, never longer than the poll interval: timers
another instance set are discovered within one poll, and those already known fire within
milliseconds of their deadline instead of up to a poll interval late.

Exactly once, with several instances: a timer is claimed with `FOR UPDATE SKIP LOCKED`
(PostgreSQL) or inside SQLite's write lock, and the update that fires it is a
compare-and-set on the alert's active escalation id (`timers.fire_next_timer`), the
way Grafana OnCall drops stale and duplicate escalation runs. Each use case runs in a
unit of work of its own that this worker opens and commits: one transaction per timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import datetime

from services.common.logging import get_logger
from services.router.deps import RouterDeps
from services.router.errors import TimerFailed
from services.router.escalation.timers import (
    FiredTimer,
    expire_next_alert,
    fire_next_timer,
    next_deadline,
    refresh_alert_gauges,
)

__all__ = ["EscalationWorker"]

log = get_logger(__name__)

_MIN_SLEEP_S = 0.002
_RECHECK_S = 0.02


class EscalationWorker:
    """Runs as a `ServiceRuntime` worker until its stop event is set."""

    def __init__(self, deps: RouterDeps) -> None:
        self._deps = deps
        self._poll_s = deps.settings.router_timer_poll_interval_s
        self._batch = deps.settings.router_timer_batch_size
        self._gauges_every_s = deps.settings.router_metrics_refresh_s
        self.fired_total = 0
        self._failed_last_round = False

    async def run(self, stop: asyncio.Event) -> None:
        """Fire due timers, then sleep until the next deadline (or the poll interval)."""
        log.info("escalation.worker_started", poll_interval_s=self._poll_s)
        next_gauges = 0.0
        while not stop.is_set():
            delay = self._poll_s
            try:
                progressed = await self.run_once(stop)
                if time.monotonic() >= next_gauges:
                    async with self._deps.unit_of_work() as uow:
                        await refresh_alert_gauges(uow)
                    next_gauges = time.monotonic() + self._gauges_every_s
                async with self._deps.unit_of_work() as uow:
                    deadline = await next_deadline(uow)
                delay = self._delay_until(deadline, progressed=progressed)
            except Exception as exc:
                # The database blinked: keep trying; timers are durable and will fire late.
                log.error("escalation.round_failed", error_type=type(exc).__name__, error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        log.info("escalation.worker_stopped", fired=self.fired_total)

    def _delay_until(self, deadline: datetime | None, *, progressed: bool) -> float:
        if deadline is None:
            return self._poll_s
        remaining = (deadline - self._deps.clock()).total_seconds()
        if remaining > 0:
            return max(min(remaining, self._poll_s), _MIN_SLEEP_S)
        if self._failed_last_round:
            return self._poll_s  # it failed this round: retry at poll pace, not in a hot loop
        if progressed:
            return _MIN_SLEEP_S  # a full batch fired: more may be due
        # It came due while this round ran, or another instance holds it (SKIP LOCKED)
        # and is firing it right now: look again shortly.
        return _RECHECK_S

    async def run_once(self, stop: asyncio.Event | None = None) -> bool:
        """Fire up to a batch of due timers and expiries; True when any fired."""
        progressed = False
        failed: list[str] = []
        expired_failed: list[str] = []
        try:
            progressed = await self._fire_batch(stop, failed, expired_failed)
        finally:
            self._failed_last_round = bool(failed or expired_failed)
        return progressed

    async def _fire_batch(
        self, stop: asyncio.Event | None, failed: list[str], expired_failed: list[str]
    ) -> bool:
        progressed = False
        for _ in range(self._batch):
            if stop is not None and stop.is_set():
                break
            try:
                result = await self._fire_one(failed)
            except TimerFailed as exc:
                # Logged once here, with the alert; the others still fire this round.
                log.error(
                    "escalation.timer_failed",
                    alert_id=str(exc.alert_id),
                    error_type=type(exc.__cause__).__name__,
                    exc_info=exc.__cause__,
                )
                failed.append(str(exc.alert_id))
                continue
            if result is None:
                break
            if result.fired:
                self.fired_total += 1
                progressed = True
            else:
                failed.append(str(result.alert_id))
        for _ in range(self._batch):
            try:
                expired = await self._expire_one(expired_failed)
            except TimerFailed as exc:
                log.error("escalation.expiry_failed", alert_id=str(exc.alert_id))
                expired_failed.append(str(exc.alert_id))
                continue
            if expired is None:
                break
            progressed = True
        return progressed

    async def _fire_one(self, skip: list[str]) -> FiredTimer | None:
        async with self._deps.unit_of_work() as uow:
            result = await fire_next_timer(uow, deps=self._deps, skip=skip)
            await uow.commit()
        return result

    async def _expire_one(self, skip: list[str]) -> uuid.UUID | None:
        async with self._deps.unit_of_work() as uow:
            expired = await expire_next_alert(uow, deps=self._deps, skip=skip)
            await uow.commit()
        return expired

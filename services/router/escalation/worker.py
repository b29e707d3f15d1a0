"""The escalation worker: fires durable timers stored on the alerts, on time, exactly once.

Timers live in the database (`alerts.next_fire_at`), not in memory, so a restarted
router resumes them and any instance may fire any alert's timer. Each round fires every
due timer in batches, resolves alerts whose operation window ended, then sleeps until
the nearest known deadline (of any instance's alerts), so known timers fire within
milliseconds of their deadline. `wake()` cuts the sleep short, for a timer this process
has just made due (every channel of a step failed: escalate now).

A new or moved timer comes with an event (alert.triggered on open and reopen). This
process's own opening and re-opening tell the worker its deadline after they commit
(`timer_set`): it looks again only when that deadline comes before its sleep ends (an
alert's first timer is usually a minute away, and the look at the end of the sleep reads
it anyway), instead of after every commit that enqueued an event (each notice's opening
and its delivery outcomes: up to two looks a second, three transactions each, at any
rate). Another router's commits reach it from the outbox (`watch_commits`, their NOTIFY).
Either way it looks again no sooner than a poll interval after its last look, so a busy
router looks as often as the poll always did. With nothing heard of it sleeps up to
`_IDLE_POLL_FACTOR` poll intervals (the safety poll, for a NOTIFY lost with its
connection): an idle router no longer runs three transactions twice a second.

Batches: one transaction claims up to `router_timer_batch_size` due alerts (`FOR UPDATE
SKIP LOCKED` on PostgreSQL, SQLite's write lock) and fires each with one `apply`, a
compare-and-set on the alert's active escalation id (`timers.fire_due_timers`), the way
Grafana OnCall drops stale and duplicate escalation runs. So a burst of 1,000 due timers
costs a few commits instead of 1,000, and several instances split it without waiting
for each other. On PostgreSQL one instance also fires `router_timer_concurrency` batches
at once (lanes claiming different rows): a batch spends most of its time waiting on the
database, and the next one is decided meanwhile.

An alert whose firing raises is a poison pill: the batch is rolled back and fired again
without it, and the alert is retried alone later, with a growing pause
(logged once as an error, then as a warning per retry), so it never holds the others.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from services.common.db import component_url
from services.common.logging import get_logger
from services.common.outbox import watch_commits
from services.router.deps import RouterDeps
from services.router.errors import TimerFailed
from services.router.escalation.timers import (
    FiredTimer,
    TimerBatchFailed,
    expire_next_alert,
    fire_due_timers,
    next_deadline,
    refresh_alert_gauges,
)

__all__ = ["EscalationWorker"]

log = get_logger(__name__)

_MIN_SLEEP_S = 0.002
_RECHECK_S = 0.02
_MAX_RETRY_PAUSE_S = 60.0
# With no commit heard of, look this many poll intervals apart (see the module docstring).
_IDLE_POLL_FACTOR = 10


@dataclass
class _Poisoned:
    """An alert whose timer failed to fire: how often, and when to try it again."""

    failures: int
    retry_at: float  # time.monotonic()


class EscalationWorker:
    """Runs as a `ServiceRuntime` worker until its stop event is set."""

    def __init__(self, deps: RouterDeps) -> None:
        self._deps = deps
        self._poll_s = deps.settings.router_timer_poll_interval_s
        self._idle_poll_s = self._poll_s * _IDLE_POLL_FACTOR
        self._batch = deps.settings.router_timer_batch_size
        # SQLite has one writer: a second lane would only wait for the first one's lock.
        sqlite = component_url(deps.settings, "router").get_backend_name() == "sqlite"
        self._lanes = 1 if sqlite else deps.settings.router_timer_concurrency
        self._gauges_every_s = deps.settings.router_metrics_refresh_s
        self.fired_total = 0
        self._failed_last_round = False
        self._poisoned: dict[str, _Poisoned] = {}
        self._woken = asyncio.Event()
        # Set after a commit that may have set a nearer timer (see the module docstring).
        self._changed = asyncio.Event()
        # When the current sleep ends (time.monotonic()); None while a round runs.
        self._sleep_ends: float | None = None

    def wake(self) -> None:
        """Look for due timers now instead of at the end of the current sleep.

        Called from the event loop (an after-commit effect), never from another thread.
        """
        self._woken.set()

    def timer_set(self, at: datetime) -> None:
        """This process committed a timer or expiry due at `at`: look again if the current
        sleep would pass it. Mid-round, always (the round may have read before the commit).

        Called from the event loop (an after-commit effect), never from another thread.
        """
        ends = self._sleep_ends
        if ends is None or time.monotonic() + (at - self._deps.clock()).total_seconds() < ends:
            self._changed.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Fire due timers, then sleep until the next deadline (or the poll interval)."""
        log.info(
            "escalation.worker_started",
            poll_interval_s=self._poll_s,
            batch=self._batch,
            lanes=self._lanes,
        )
        next_gauges = 0.0
        # This process's own new timers come through `timer_set`.
        unwatch = watch_commits(self._changed, elsewhere_only=True)
        try:
            while not stop.is_set():
                delay = self._poll_s
                looked = time.monotonic()
                # Before the round reads: a commit from now on asks for another look.
                self._changed.clear()
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
                    log.error(
                        "escalation.round_failed", error_type=type(exc).__name__, error=str(exc)
                    )
                await self._sleep(stop, delay, looked=looked)
        finally:
            unwatch()
        log.info("escalation.worker_stopped", fired=self.fired_total)

    async def _sleep(self, stop: asyncio.Event, delay: float, *, looked: float) -> None:
        """Sleep `delay` seconds, or less if stopped or woken; after a commit that may have
        set a nearer timer, until a poll interval after the last look (`looked`) at most."""
        ends = self._sleep_ends = time.monotonic() + delay
        waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._woken.wait())}
        changed = asyncio.ensure_future(self._changed.wait())
        waits.add(changed)
        try:
            while (remaining := ends - time.monotonic()) > 0:
                done, _ = await asyncio.wait(
                    waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                if done != {changed}:
                    break  # the deadline, stopped, or woken
                waits.discard(changed)  # heard once: later commits change nothing more
                ends = self._sleep_ends = min(ends, looked + self._poll_s)
        finally:
            self._sleep_ends = None
            for waiting in waits | {changed}:
                waiting.cancel()
        self._woken.clear()

    def _delay_until(self, deadline: datetime | None, *, progressed: bool) -> float:
        if deadline is None:
            return self._idle_poll_s
        remaining = (deadline - self._deps.clock()).total_seconds()
        if remaining > 0:
            return max(min(remaining, self._idle_poll_s), _MIN_SLEEP_S)
        if self._failed_last_round:
            return self._poll_s  # a poison alert is still due: retry at poll pace, not hot
        if progressed:
            return _MIN_SLEEP_S  # timers fired: more may be due
        # It came due while this round ran, or another instance holds it (SKIP LOCKED)
        # and is firing it right now: look again shortly.
        return _RECHECK_S

    async def run_once(self, stop: asyncio.Event | None = None) -> bool:
        """Fire every due timer (in batches) and up to a batch of expiries; True if any."""
        expired_failed: list[str] = []
        try:
            fired = await self._fire_lanes(stop)
            expired = await self._expire_due(expired_failed)
        finally:
            self._failed_last_round = bool(self._poisoned or expired_failed)
        return fired or expired

    async def _fire_lanes(self, stop: asyncio.Event | None) -> bool:
        """`_fire_due` in one lane, and in the others too once a batch came back full (a
        burst: more are due); True when any fired. An idle round claims once, not per lane.
        """
        if self._lanes == 1:
            return await self._fire_due(stop)
        burst = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as lanes:  # one lane failing stops the others
                first = lanes.create_task(self._fire_due(stop, burst=burst))
                others = [
                    lanes.create_task(self._join_burst(stop, burst, first))
                    for _ in range(self._lanes - 1)
                ]
        except ExceptionGroup as failed:
            # The lanes share a database: their errors are one blink, reported as the first.
            raise failed.exceptions[0] from None
        return any(lane.result() for lane in (first, *others))

    async def _join_burst(
        self, stop: asyncio.Event | None, burst: asyncio.Event, first: asyncio.Task[bool]
    ) -> bool:
        """Fire in a lane of its own once `burst` is set; nothing if `first` ends before."""
        waiting = asyncio.ensure_future(burst.wait())
        try:
            await asyncio.wait([waiting, first], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        return await self._fire_due(stop) if burst.is_set() else False

    async def _fire_due(
        self, stop: asyncio.Event | None, *, burst: asyncio.Event | None = None
    ) -> bool:
        """Batch after batch until fewer than a batch were due; True when any fired.

        `burst` is set when a batch came back full (more are due).
        """
        progressed = False
        unfired: list[str] = []  # guard failed: another instance moved on; not again now
        singles = 0  # after a batch failed as a whole: this many alerts one at a time
        while stop is None or not stop.is_set():
            limit = 1 if singles else self._batch
            try:
                results = await self._fire_batch([*self._skipped(), *unfired], limit)
            except TimerFailed as exc:
                self._poison(exc)
                continue  # the same batch again, without the poison alert
            except TimerBatchFailed as exc:
                # Its writes failed with no alert to blame: fire that batch one alert per
                # transaction, so the culprit shows up as a TimerFailed of its own.
                log.warning("escalation.batch_failed", error_type=type(exc.__cause__).__name__)
                singles = self._batch
                continue
            singles = max(singles - 1, 0)
            for result in results:
                if result.fired:
                    self.fired_total += 1
                    progressed = True
                    self._poisoned.pop(str(result.alert_id), None)
                else:
                    unfired.append(str(result.alert_id))
            if len(results) < limit:
                break
            if burst is not None:
                burst.set()
        return progressed

    async def _fire_batch(self, skip: list[str], limit: int) -> list[FiredTimer]:
        async with self._deps.unit_of_work() as uow:
            results = await fire_due_timers(uow, deps=self._deps, limit=limit, skip=skip)
            await uow.commit()
        return results

    def _skipped(self) -> list[str]:
        """Poison alerts still pausing before their next try."""
        now = time.monotonic()
        return [alert_id for alert_id, p in self._poisoned.items() if p.retry_at > now]

    def _poison(self, exc: TimerFailed) -> None:
        """Set the failing alert aside, pausing longer after each failure; log it once."""
        alert_id = str(exc.alert_id)
        previous = self._poisoned.get(alert_id)
        failures = previous.failures + 1 if previous else 1
        pause = min(self._poll_s * 2 ** (failures - 1), _MAX_RETRY_PAUSE_S)
        self._poisoned[alert_id] = _Poisoned(failures, time.monotonic() + pause)
        cause = exc.__cause__
        if previous is None:
            # Logged once here, with the traceback; the others in its batch still fire.
            log.error(
                "escalation.timer_failed",
                alert_id=alert_id,
                error_type=type(cause).__name__,
                retry_in_s=pause,
                exc_info=cause,
            )
        else:
            log.warning(
                "escalation.timer_still_failing",
                alert_id=alert_id,
                error_type=type(cause).__name__,
                failures=failures,
                retry_in_s=pause,
            )

    async def _expire_due(self, failed: list[str]) -> bool:
        """Resolve up to a batch of alerts whose window ended, one transaction each."""
        progressed = False
        for _ in range(self._batch):
            try:
                expired = await self._expire_one(failed)
            except TimerFailed as exc:
                log.error("escalation.expiry_failed", alert_id=str(exc.alert_id))
                failed.append(str(exc.alert_id))
                continue
            if expired is None:
                break
            progressed = True
        return progressed

    async def _expire_one(self, skip: list[str]) -> uuid.UUID | None:
        async with self._deps.unit_of_work() as uow:
            expired = await expire_next_alert(uow, deps=self._deps, skip=skip)
            await uow.commit()
        return expired

"""Alerting use cases driven by aviso.notices.v1: open, re-open and cancel a notice's alert.

Each runs inside the consumer's unit of work (which also holds the inbox claim on the
message id) and never commits it. Logs and metrics wait for the commit. On PostgreSQL a
lone notice.received's usual opening carries the claim itself instead
(`open_alert_claiming`): one statement that commits by itself; a run of them in a batch
has its usual openings written together (`open_alerts`): one round trip for all; a
batch's leading run carries its claims too (`open_alerts_claiming`): one round trip, no
BEGIN and no COMMIT.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime

from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from services.common.cloudevents import correlation_scope, current_correlation_id
from services.common.inbox import Claim
from services.common.logging import get_logger
from services.router import domain
from services.router.alerting.notify import notify
from services.router.deps import RouterDeps
from services.router.domain import AlertRecord, DirectoryVersion, Transition
from services.router.errors import NoDirectory
from services.router.metrics import ALERTS_TRIGGERED
from services.router.observability import alert_fields, drill_label
from services.router.unit_of_work import RouterUoW

__all__ = [
    "FinishOpening",
    "cancel_alert",
    "open_alert",
    "open_alert_claiming",
    "open_alerts",
    "open_alerts_claiming",
    "reopen_alert",
]

log = get_logger(__name__)

# What finishes one notice of a run opened together (`open_alerts`), in the batch's unit of
# work, in the notice's turn.
FinishOpening = Callable[[RouterUoW], Awaitable[None]]


async def open_alert(
    uow: RouterUoW, *, deps: RouterDeps, notice: NoticeReceived | NoticeUpdated
) -> None:
    """notice.received: open the notice's alert, freeze who is reached, notify step 0.

    Also takes a notice.updated for a notice router never alerted on (deployed later,
    or the first version was skipped), so an update is never silently dropped.
    """
    now = deps.clock()
    if await _open_known(uow, deps=deps, notice=notice, now=now):
        return
    await _open_read(uow, deps=deps, notice=notice, now=now)


async def _open_read(
    uow: RouterUoW, *, deps: RouterDeps, notice: NoticeReceived | NoticeUpdated, now: datetime
) -> None:
    """`open_alert`'s slow path, when the usual opening wrote nothing: read the notice's
    alert (locked) and the directory, then decide."""
    fields = {"notice_id": str(notice.notice_id), "notice_version": notice.version}
    existing = await uow.alerts.for_notice(notice.notice_id, lock=True)
    if existing is not None:
        if isinstance(notice, NoticeUpdated):
            await reopen_alert(uow, deps=deps, notice=notice)
            return
        # Intake re-sent the notice under another message id: one notice, one alert.
        log.info("alert.duplicate_notice", alert_id=str(existing.id), **fields)
        return
    if domain.window_over(notice.window_end, now):
        # History replayed to a new consumer group: the operation is over already.
        log.warning("alert.notice_window_over", **fields)
        return
    directory = await uow.directory.current()
    if directory is None:
        log.error("alert.no_directory", **fields)
        raise NoDirectory("no directory configured: PUT /v1/directory or set the directory file")
    deps.known_directory.remember(directory)
    opening = _opening(notice, deps=deps, directory=directory, now=now)
    await uow.alerts.apply(opening)
    _triggered(uow, opening.after, deps=deps, notice=notice, directory=directory)


async def open_alerts(
    uow: RouterUoW, *, deps: RouterDeps, notices: Sequence[tuple[NoticeReceived, str | None]]
) -> list[FinishOpening]:
    """notice.received for a run of a batch, each with its correlation id: each usual
    opening built as `_open_known` builds it, all written in one round trip (`open_many`:
    PostgreSQL). What finishes each notice, in order, in the batch's transaction: a new
    alert's effects once committed, or `open_alert`'s slow path for one whose usual
    opening wrote nothing (then, not before: it sees every opening before it)."""
    known = deps.known_directory.latest
    built = _usual_openings(deps, known, notices)
    openings = [opening for _, _, opening in built if opening is not None]
    opened: Iterator[bool] = iter(())
    if known is not None and openings:
        version, digest = known.version, known.digest
        opened = iter(
            await uow.alerts.open_many(openings, directory_version=version, directory_digest=digest)
        )
    finishers: list[FinishOpening] = []
    for notice, now, opening in built:
        if opening is not None and next(opened) and known is not None:
            finishers.append(_finish_opened(deps, notice, opening.after, known))
        else:
            finishers.append(_finish_unopened(deps, notice, now))
    return finishers


async def open_alerts_claiming(
    uow: RouterUoW,
    *,
    deps: RouterDeps,
    notices: Sequence[tuple[NoticeReceived, str | None, Claim]],
) -> list[FinishOpening | None]:
    """notice.received for a batch's leading run, each with its correlation id and the
    consumer's inbox claim (PostgreSQL, nothing sent yet in `uow`): each usual opening
    carrying its claim, as `open_alert_claiming`'s, all in one round trip without BEGIN
    (`open_many` with claims: one implicit transaction, committed as it answers). Per
    notice what finishes it once committed (a new alert's effects), or None where nothing
    was written, neither the alert nor the claim (the consumer then applies it as usual)."""
    known = deps.known_directory.latest
    built = _usual_openings(deps, known, [(notice, corr) for notice, corr, _ in notices])
    carried = [
        (opening, claim)
        for (_, _, opening), (_, _, claim) in zip(built, notices, strict=True)
        if opening is not None
    ]
    if known is None or not carried:
        return [None] * len(built)
    opened = iter(
        await uow.alerts.open_many(
            [opening for opening, _ in carried],
            directory_version=known.version,
            directory_digest=known.digest,
            claims=[claim for _, claim in carried],
        )
    )
    return [
        _finish_opened(deps, notice, opening.after, known)
        if opening is not None and next(opened)
        else None
        for notice, _, opening in built
    ]


def _usual_openings(
    deps: RouterDeps,
    known: DirectoryVersion | None,
    notices: Sequence[tuple[NoticeReceived, str | None]],
) -> list[tuple[NoticeReceived, datetime, Transition | None]]:
    """Each notice with its clock reading and its usual opening from the directory router
    knows, built under its own correlation id; None where there is none to try (no
    directory known, the window over)."""
    built: list[tuple[NoticeReceived, datetime, Transition | None]] = []
    for notice, correlation_id in notices:
        now = deps.clock()
        opening = None
        if known is not None and not domain.window_over(notice.window_end, now):
            with correlation_scope(correlation_id):  # it goes on the alert and its events
                opening = _opening(notice, deps=deps, directory=known, now=now)
        built.append((notice, now, opening))
    return built


def _finish_opened(
    deps: RouterDeps, notice: NoticeReceived, alert: AlertRecord, directory: DirectoryVersion
) -> FinishOpening:
    """What `_open_known` does once its write went in."""

    async def finish(uow: RouterUoW) -> None:
        _triggered(uow, alert, deps=deps, notice=notice, directory=directory)

    return finish


def _finish_unopened(deps: RouterDeps, notice: NoticeReceived, now: datetime) -> FinishOpening:
    async def finish(uow: RouterUoW) -> None:
        await _open_read(uow, deps=deps, notice=notice, now=now)

    return finish


async def open_alert_claiming(
    uow: RouterUoW, *, deps: RouterDeps, notice: NoticeReceived, claim: Claim
) -> bool:
    """notice.received in one statement with the consumer's inbox claim, committed by
    itself: whether it was (else nothing was written and `open_alert` decides)."""
    return await _open_known(uow, deps=deps, notice=notice, now=deps.clock(), claim=claim)


async def _open_known(
    uow: RouterUoW,
    *,
    deps: RouterDeps,
    notice: NoticeReceived | NoticeUpdated,
    now: datetime,
    claim: Claim | None = None,
) -> bool:
    """The usual case, without reading the alert or the directory first: the write itself
    checks that the notice has no alert and the directory router knows is still in
    force. Whether it opened the alert."""
    known = deps.known_directory.latest
    if known is None or domain.window_over(notice.window_end, now):
        return False
    opening = _opening(notice, deps=deps, directory=known, now=now)
    if not await uow.alerts.open(
        opening, directory_version=known.version, directory_digest=known.digest, claim=claim
    ):
        return False
    _triggered(uow, opening.after, deps=deps, notice=notice, directory=known)
    return True


def _opening(
    notice: NoticeReceived | NoticeUpdated,
    *,
    deps: RouterDeps,
    directory: DirectoryVersion,
    now: datetime,
) -> Transition:
    """The new alert with its step-0 notification."""
    opened = domain.open_alert(
        notice,
        directory=directory,
        now=now,
        horizon=deps.horizon,
        correlation_id=current_correlation_id.get(),
    )
    recipient = opened.after.snapshot.target(0)
    return notify(opened, deps=deps, recipient_id=recipient, purpose="alert", now=now)


def _triggered(
    uow: RouterUoW,
    alert: AlertRecord,
    *,
    deps: RouterDeps,
    notice: NoticeReceived | NoticeUpdated,
    directory: DirectoryVersion,
) -> None:
    """The metric and log of a new alert, and its deadline to the escalation worker, once
    it is committed."""
    cause = "notice.received" if isinstance(notice, NoticeReceived) else "notice.updated"
    recipient = alert.snapshot.target(0)

    def committed() -> None:
        deps.timer_set(_deadline(alert))
        ALERTS_TRIGGERED.labels(cause, drill_label(alert)).inc()
        log.info(
            "alert.triggered",
            **alert_fields(alert, step=0, repeat=0, recipient_id=str(recipient)),
            urgency=alert.urgency,
            delegated=alert.snapshot.delegated,
            directory_version=directory.version,
        )

    def behind_the_sends() -> None:
        # The commit's hand-off has just spawned the notice's sends. The webhook's first
        # step builds its request and spawns the task that writes it (aiohttp on Python
        # 3.11): two turns put this line and its counter (~0.2 ms) behind that write.
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, committed)

    uow.after_commit(behind_the_sends)


def _deadline(alert: AlertRecord) -> datetime:
    """The first of the alert's escalation timer and its expiry (the worker waits for both)."""
    if alert.next_fire_at is None:
        return alert.expires_at
    return min(alert.next_fire_at, alert.expires_at)


async def reopen_alert(uow: RouterUoW, *, deps: RouterDeps, notice: NoticeUpdated) -> None:
    """notice.updated: re-notify and require a fresh acknowledgement of the new version."""
    now = deps.clock()
    alert = await uow.alerts.for_notice(notice.notice_id, lock=True)
    if alert is None:
        await open_alert(uow, deps=deps, notice=notice)
        return
    if notice.version <= alert.notice_version:
        log.info("alert.stale_update_ignored", **alert_fields(alert), update_version=notice.version)
        return
    if alert.state == "resolved":
        log.warning("alert.update_after_resolution", **alert_fields(alert))
        return
    reopened = domain.reopen(
        alert,
        notice=notice,
        now=now,
        horizon=deps.horizon,
        correlation_id=current_correlation_id.get(),
    )
    recipient = alert.snapshot.target(0)
    transition = notify(reopened, deps=deps, recipient_id=recipient, purpose="update", now=now)
    # Whoever acknowledged the previous version is working on it: they hear of the change.
    if alert.acknowledged_by is not None and alert.acknowledged_by != recipient:
        transition = notify(
            transition, deps=deps, recipient_id=alert.acknowledged_by, purpose="update", now=now
        )
    await uow.alerts.apply(transition)
    after = reopened.after

    def committed() -> None:
        deps.timer_set(_deadline(after))
        ALERTS_TRIGGERED.labels("notice.updated", drill_label(after)).inc()
        log.info(
            "alert.reopened",
            **alert_fields(after, step=0, repeat=0, recipient_id=str(recipient)),
            previous_version=alert.notice_version,
            previous_state=alert.state,
        )

    uow.after_commit(committed)


async def cancel_alert(uow: RouterUoW, *, deps: RouterDeps, notice: NoticeCancelled) -> None:
    """notice.cancelled: resolve the alert, stop escalation, tell everyone who was notified."""
    now = deps.clock()
    alert = await uow.alerts.for_notice(notice.notice_id, lock=True)
    if alert is None:
        log.info(
            "alert.cancel_without_alert",
            notice_id=str(notice.notice_id),
            notice_version=notice.version,
        )
        return
    if alert.state == "resolved" or notice.version <= alert.notice_version:
        log.info("alert.stale_cancel_ignored", **alert_fields(alert), state=alert.state)
        return
    transition = domain.cancel(alert, notice=notice, now=now)
    told = await uow.alerts.notified_recipients(alert.id)
    for recipient in told:
        transition = notify(
            transition,
            deps=deps,
            recipient_id=recipient,
            purpose="cancel",
            now=now,
            at_position=False,
            cancel_reason=notice.reason,
        )
    await uow.alerts.apply(transition)
    resolved = transition.after
    uow.after_commit(
        lambda: log.info(
            "alert.resolved",
            **alert_fields(resolved),
            reason="notice_cancelled",
            acknowledged=alert.state == "acknowledged",
            recipients_told=len(told),
        )
    )

"""Router's use cases: open, re-open and resolve alerts, deliver, acknowledge, escalate.

Each use case owns one transaction: the Kafka-driven ones run inside the consumer's
transaction (which also holds the inbox claim on the message id), the others open their
own. Outgoing events go to the outbox in that same transaction and are published after
commit. Ids, not ORM objects, cross from one step to the next.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from schemas.alerts import (
    AckMethod,
    AlertAcknowledged,
    AlertDelivered,
    AlertEscalated,
    AlertResolved,
    AlertTriggered,
)
from schemas.base import is_drill
from schemas.deliveries import DeliveryRequested
from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from services.common.cloudevents import correlation_scope, current_correlation_id
from services.common.logging import bound, get_logger
from services.common.outbox import enqueue
from services.common.signing import LinkTokenError, make_link_token, read_link_token
from services.router import repository as repo
from services.router.adapters import Channels, DeliveryError
from services.router.config import RouterSettings
from services.router.directory import InvalidDirectory, read_directory_file
from services.router.domain import (
    ACKNOWLEDGEABLE_STATES,
    OPEN_STATES,
    AnnotationText,
    DirectoryDocument,
    EscalationPosition,
    NoticeContent,
    StepOutcome,
    alert_id_for,
    delivery_id_for,
    delivery_still_wanted,
    directory_digest,
    first_position,
    next_step,
    snapshot_directory,
    urgency_for,
    validate_directory,
    window_over,
)
from services.router.messages import render_footer, render_notification
from services.router.metrics import (
    ALERTS_BY_STATE,
    ALERTS_EXHAUSTED,
    ALERTS_TRIGGERED,
    DELIVERIES,
    DELIVERY_FAILURES,
    ESCALATIONS,
    OPEN_ALERTS,
    TIME_TO_ACKNOWLEDGE,
    TIMER_LATENESS,
)

__all__ = [
    "AckResult",
    "AlertClosed",
    "AlertNotFound",
    "DirectoryConflict",
    "FiredTimer",
    "LinkClaims",
    "LinkRejected",
    "NoDirectory",
    "NotARecipient",
    "RouterDeps",
    "StaleVersion",
    "TimerFailed",
    "UnknownVersion",
    "acknowledge",
    "alert_timeline",
    "cancel_alert",
    "current_directory",
    "deliver",
    "expire_next_alert",
    "fire_next_timer",
    "get_alert",
    "list_alerts",
    "load_directory_file",
    "next_deadline",
    "open_alert",
    "read_link",
    "refresh_alert_gauges",
    "reopen_alert",
    "replace_directory",
]

log = get_logger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class RouterDeps:
    """What the use cases need from the composition root."""

    settings: RouterSettings
    sessions: async_sessionmaker[AsyncSession]
    channels: Channels
    source: str = "aviso.router"
    clock: Callable[[], datetime] = field(default=_utcnow)

    @property
    def horizon(self) -> timedelta:
        return timedelta(seconds=self.settings.router_urgency_horizon_s)

    @property
    def public_base_url(self) -> str:
        base = self.settings.public_base_url
        if not base:
            base = f"http://{self.settings.http_host}:{self.settings.router_port}"
        return base.rstrip("/")

    @property
    def link_secret(self) -> bytes:
        return self.settings.link_secret.get_secret_value().encode("utf-8")

    def notice_url(self, notice_id: uuid.UUID) -> str:
        """Where a contact reads the restricted detail (intake, contact token required)."""
        return f"{self.settings.router_intake_base_url.rstrip('/')}/v1/notices/{notice_id}"


# --- errors the HTTP edge maps to problems ------------------------------------------


class NoDirectory(RuntimeError):
    """No directory is configured: nobody can be alerted (the message is retried, then DLQ)."""


class AlertNotFound(LookupError):
    """No alert with that id."""


class NotARecipient(PermissionError):
    """The caller is not among the people this alert may reach."""


class StaleVersion(Exception):
    """The caller acknowledged a version the field office has since updated."""

    def __init__(self, *, current_version: int, alert_id: uuid.UUID, notice_id: uuid.UUID) -> None:
        super().__init__(f"notice is at version {current_version}")
        self.current_version = current_version
        self.alert_id = alert_id
        self.notice_id = notice_id


class UnknownVersion(Exception):
    """The caller named a version router has not seen (yet)."""

    def __init__(self, *, current_version: int) -> None:
        super().__init__(f"notice is at version {current_version}")
        self.current_version = current_version


class AlertClosed(Exception):
    """The alert was resolved before anyone acknowledged it."""

    def __init__(self, *, resolution: str | None) -> None:
        super().__init__(resolution or "resolved")
        self.resolution = resolution


class DirectoryConflict(Exception):
    """The directory changed since the caller read it (or a concurrent write won)."""

    def __init__(self, *, current_version: int) -> None:
        super().__init__(f"directory is at version {current_version}")
        self.current_version = current_version


class TimerFailed(Exception):
    """Firing one alert's timer failed; the worker skips that alert for this round."""

    def __init__(self, alert_id: uuid.UUID) -> None:
        super().__init__(str(alert_id))
        self.alert_id = alert_id


class LinkRejected(Exception):
    """A one-click link that must not be honoured (expired, tampered, wrong alert)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- alerting (consumer of aviso.notices.v1) --------------------------------------------


def _content(notice: NoticeReceived | NoticeUpdated) -> NoticeContent:
    return NoticeContent(
        operation_type=notice.operation_type,
        public_safety_nexus=notice.public_safety_nexus,
        window_start=notice.window_start,
        window_end=notice.window_end,
        area=notice.area,
        area_code=notice.area_code,
        summary=notice.summary,
        policy_annotations=tuple(
            AnnotationText(code=a.code, text=a.text) for a in notice.policy_annotations
        ),
    )


def _log_fields(alert: repo.AlertRecord, **extra: Any) -> dict[str, Any]:
    # Ids and states only: never names, addresses or notice text.
    return {
        "alert_id": str(alert.id),
        "notice_id": str(alert.notice_id),
        "notice_version": alert.notice_version,
        "drill": is_drill(alert.status),
        **extra,
    }


async def _require(session: AsyncSession, alert_id: uuid.UUID) -> repo.AlertRecord:
    alert = await repo.get_alert(session, alert_id=alert_id)
    if alert is None:
        raise AlertNotFound(str(alert_id))
    return alert


async def open_alert(
    session: AsyncSession, *, deps: RouterDeps, notice: NoticeReceived | NoticeUpdated
) -> None:
    """notice.received: open the notice's alert, freeze who is reached, notify step 0.

    Also takes a notice.updated for a notice router never alerted on (deployed later,
    or the first version was skipped), so an update is never silently dropped.
    """
    now = deps.clock()
    cause: Literal["notice.received", "notice.updated"] = (
        "notice.received" if isinstance(notice, NoticeReceived) else "notice.updated"
    )
    fields = {"notice_id": str(notice.notice_id), "notice_version": notice.version}
    existing = await repo.get_alert(session, notice_id=notice.notice_id, lock=True)
    if existing is not None:
        if isinstance(notice, NoticeUpdated):
            await reopen_alert(session, deps=deps, notice=notice)
            return
        # Intake re-sent the notice under another message id: one notice, one alert.
        log.info("alert.duplicate_notice", alert_id=str(existing.id), **fields)
        return
    if window_over(notice.window_end, now):
        # History replayed to a new consumer group: the operation is over already.
        log.warning("alert.notice_window_over", **fields)
        return
    directory = await repo.current_directory(session)
    if directory is None:
        log.error("alert.no_directory", **fields)
        raise NoDirectory("no directory configured: PUT /v1/directory or set the directory file")

    snapshot = snapshot_directory(directory.document, version=directory.version, at=now)
    content = _content(notice)
    urgency = urgency_for(
        window_start=notice.window_start,
        window_end=notice.window_end,
        now=now,
        horizon=deps.horizon,
    )
    alert_id = alert_id_for(notice.notice_id)
    start = first_position(snapshot, at=now)
    # (nothing) -> triggered
    await repo.insert_alert(
        session,
        id=alert_id,
        notice_id=notice.notice_id,
        notice_version=notice.version,
        status=notice.status,
        state="triggered",
        urgency=urgency,
        content=content,
        snapshot=snapshot,
        step=0,
        repeat=0,
        escalation_count=0,
        next_fire_at=start.next_fire_at,
        active_escalation_id=str(uuid.uuid4()),
        correlation_id=current_correlation_id.get(),
        triggered_at=now,
        version_triggered_at=now,
        expires_at=notice.window_end,
        updated_at=now,
    )
    alert = await _require(session, alert_id)
    recipient = snapshot.target(0)
    await repo.add_timeline(
        session,
        alert_id=alert_id,
        kind="triggered",
        at=now,
        notice_version=notice.version,
        position=alert.position,
        recipient_id=recipient,
        detail={
            "cause": cause,
            "urgency": urgency,
            "status": notice.status,
            "directory_version": directory.version,
            "spoc_id": str(snapshot.spoc_id),
            "delegated": snapshot.delegated,
        },
    )
    await enqueue(
        session,
        AlertTriggered(
            alert_id=alert_id,
            notice_id=notice.notice_id,
            notice_version=notice.version,
            status=notice.status,
            cause=cause,
            urgency=urgency,
            step=0,
            recipient_id=recipient,
            delegated=snapshot.delegated,
            triggered_at=now,
        ),
        source=deps.source,
    )
    await _notify(session, deps, alert, recipient_id=recipient, purpose="alert", now=now)
    ALERTS_TRIGGERED.labels(cause, str(is_drill(notice.status)).lower()).inc()
    log.info(
        "alert.triggered",
        **_log_fields(alert, step=0, repeat=0, recipient_id=str(recipient)),
        urgency=urgency,
        delegated=snapshot.delegated,
        directory_version=directory.version,
    )


async def reopen_alert(session: AsyncSession, *, deps: RouterDeps, notice: NoticeUpdated) -> None:
    """notice.updated: re-notify and require a fresh acknowledgement of the new version."""
    now = deps.clock()
    alert = await repo.get_alert(session, notice_id=notice.notice_id, lock=True)
    if alert is None:
        await open_alert(session, deps=deps, notice=notice)
        return
    if notice.version <= alert.notice_version:
        log.info("alert.stale_update_ignored", **_log_fields(alert), update_version=notice.version)
        return
    if alert.state == "resolved":
        log.warning("alert.update_after_resolution", **_log_fields(alert))
        return
    snapshot = alert.snapshot
    start = first_position(snapshot, at=now)
    urgency = urgency_for(
        window_start=notice.window_start,
        window_end=notice.window_end,
        now=now,
        horizon=deps.horizon,
    )
    # triggered | delivered | escalated | acknowledged | unacknowledged_exhausted -> triggered
    # The frozen snapshot stays: the alert keeps reaching the people it reached.
    await repo.update_alert(
        session,
        alert.id,
        notice_version=notice.version,
        status=notice.status,
        state="triggered",
        urgency=urgency,
        content=_content(notice),
        step=0,
        repeat=0,
        next_fire_at=start.next_fire_at,
        active_escalation_id=str(uuid.uuid4()),
        # Escalations of the new version carry the update's correlation id.
        correlation_id=current_correlation_id.get() or alert.correlation_id,
        version_triggered_at=now,
        exhausted_at=None,
        expires_at=notice.window_end,
        updated_at=now,
    )
    reopened = await _require(session, alert.id)
    recipient = snapshot.target(0)
    await repo.add_timeline(
        session,
        alert_id=alert.id,
        kind="reopened",
        at=now,
        notice_version=notice.version,
        position=reopened.position,
        recipient_id=recipient,
        detail={
            "previous_version": alert.notice_version,
            "previous_state": alert.state,
            "urgency": urgency,
        },
    )
    await enqueue(
        session,
        AlertTriggered(
            alert_id=alert.id,
            notice_id=alert.notice_id,
            notice_version=notice.version,
            status=notice.status,
            cause="notice.updated",
            urgency=urgency,
            step=0,
            recipient_id=recipient,
            delegated=snapshot.delegated,
            triggered_at=now,
        ),
        source=deps.source,
    )
    await _notify(session, deps, reopened, recipient_id=recipient, purpose="update", now=now)
    # Whoever acknowledged the previous version is working on it: they hear of the change.
    if alert.acknowledged_by is not None and alert.acknowledged_by != recipient:
        await _notify(
            session, deps, reopened, recipient_id=alert.acknowledged_by, purpose="update", now=now
        )
    ALERTS_TRIGGERED.labels("notice.updated", str(is_drill(notice.status)).lower()).inc()
    log.info(
        "alert.reopened",
        **_log_fields(reopened, step=0, repeat=0, recipient_id=str(recipient)),
        previous_version=alert.notice_version,
        previous_state=alert.state,
    )


async def cancel_alert(session: AsyncSession, *, deps: RouterDeps, notice: NoticeCancelled) -> None:
    """notice.cancelled: resolve the alert, stop escalation, tell everyone who was notified."""
    now = deps.clock()
    alert = await repo.get_alert(session, notice_id=notice.notice_id, lock=True)
    if alert is None:
        log.info(
            "alert.cancel_without_alert",
            notice_id=str(notice.notice_id),
            notice_version=notice.version,
        )
        return
    if alert.state == "resolved" or notice.version <= alert.notice_version:
        log.info("alert.stale_cancel_ignored", **_log_fields(alert), state=alert.state)
        return
    acknowledged = alert.state == "acknowledged"
    # any unresolved state -> resolved
    await repo.update_alert(
        session,
        alert.id,
        notice_version=notice.version,
        status=notice.status,
        state="resolved",
        resolution="notice_cancelled",
        resolved_at=now,
        next_fire_at=None,
        active_escalation_id=None,
        updated_at=now,
    )
    resolved = await _require(session, alert.id)
    await repo.add_timeline(
        session,
        alert_id=alert.id,
        kind="resolved",
        at=now,
        notice_version=notice.version,
        detail={
            "reason": "notice_cancelled",
            "cancel_reason": notice.reason,
            "acknowledged": acknowledged,
        },
    )
    await enqueue(
        session,
        AlertResolved(
            alert_id=alert.id,
            notice_id=alert.notice_id,
            notice_version=notice.version,
            status=notice.status,
            reason="notice_cancelled",
            acknowledged=acknowledged,
            resolved_at=now,
        ),
        source=deps.source,
    )
    told = await repo.notified_recipients(session, alert.id)
    for recipient in told:
        await _notify(
            session,
            deps,
            resolved,
            recipient_id=recipient,
            purpose="cancel",
            now=now,
            position=None,
            cancel_reason=notice.reason,
        )
    log.info(
        "alert.resolved",
        **_log_fields(resolved),
        reason="notice_cancelled",
        acknowledged=acknowledged,
        recipients_told=len(told),
    )


async def _notify(
    session: AsyncSession,
    deps: RouterDeps,
    alert: repo.AlertRecord,
    *,
    recipient_id: uuid.UUID,
    purpose: Literal["alert", "escalation", "update", "cancel"],
    now: datetime,
    position: EscalationPosition | Literal["current"] | None = "current",
    correlation_id: str | None = None,
    cancel_reason: str | None = None,
) -> None:
    """Ask the adapters to reach `recipient_id` on each of their frozen channels."""
    where = alert.position if position == "current" else position
    recipient = alert.snapshot.recipient(recipient_id)
    if recipient is None:
        log.error(
            "alert.recipient_not_in_snapshot", **_log_fields(alert), recipient_id=str(recipient_id)
        )
        return
    message = render_notification(
        alert_id=alert.id,
        notice_id=alert.notice_id,
        notice_version=alert.notice_version,
        status=alert.status,
        urgency=alert.urgency,
        content=alert.content,
        purpose=purpose,
        position=where,
        notice_url=deps.notice_url(alert.notice_id),
        timezone=deps.settings.router_display_timezone,
        horizon=deps.horizon,
        cancel_reason=cancel_reason,
    )
    for channel in recipient.channels.kinds():
        delivery_id = delivery_id_for(
            alert_id=alert.id,
            notice_version=alert.notice_version,
            recipient_id=recipient_id,
            channel=channel,
            purpose=purpose,
            position=where,
        )
        await enqueue(
            session,
            DeliveryRequested(
                delivery_id=delivery_id,
                origin="router",
                aggregate_id=alert.id,
                aggregate_version=alert.notice_version,
                purpose=purpose,
                recipient_id=recipient_id,
                channel=channel,
                language="en",
                status=alert.status,
                headline=message.headline,
                body=message.body,
                requested_at=now,
            ),
            source=deps.source,
            correlation_id=correlation_id,
        )
        await repo.add_timeline(
            session,
            alert_id=alert.id,
            kind="notified",
            at=now,
            notice_version=alert.notice_version,
            position=where,
            recipient_id=recipient_id,
            channel=channel,
            delivery_id=delivery_id,
            detail={"purpose": purpose},
        )


# --- channel adapters (consumer of aviso.deliveries.v1) --------------------------------


def _ack_link(
    deps: RouterDeps, *, alert_id: uuid.UUID, version: int, person_id: uuid.UUID, now: datetime
) -> tuple[str, datetime]:
    expires_at = now + timedelta(seconds=deps.settings.router_ack_link_ttl_s)
    token = make_link_token(
        deps.link_secret,
        {"a": str(alert_id), "v": version, "p": str(person_id)},
        expires_at=int(expires_at.timestamp()),
    )
    return f"{deps.public_base_url}/ack?token={token}", expires_at


def _compose(
    deps: RouterDeps, alert: repo.AlertRecord, request: DeliveryRequested, now: datetime
) -> tuple[str, dict[str, Any]]:
    """The text and webhook payload: the releasable request plus the one-click link."""
    ack_url: str | None = None
    ack_expires: datetime | None = None
    if request.purpose != "cancel" and alert.snapshot.may_acknowledge(request.recipient_id):
        ack_url, ack_expires = _ack_link(
            deps,
            alert_id=alert.id,
            version=request.aggregate_version,
            person_id=request.recipient_id,
            now=now,
        )
    correlation_id = current_correlation_id.get()
    text = request.body + render_footer(
        ack_url=ack_url,
        ack_expires_at=ack_expires,
        correlation_id=correlation_id,
        delivery_id=request.delivery_id,
        timezone=deps.settings.router_display_timezone,
    )
    payload = {
        "type": "aviso.alert.notification",
        "delivery_id": str(request.delivery_id),
        "purpose": request.purpose,
        "alert_id": str(alert.id),
        "notice_id": str(alert.notice_id),
        "notice_version": request.aggregate_version,
        "status": request.status,
        "drill": is_drill(request.status),
        "urgency": alert.urgency,
        "recipient_id": str(request.recipient_id),
        "headline": request.headline,
        "text": text,
        "ack_url": ack_url,
        "ack_expires_at": ack_expires.isoformat() if ack_expires else None,
        "notice_url": deps.notice_url(alert.notice_id),
        # The webhook sender takes no extra headers, so the correlation id rides inside.
        "correlation_id": correlation_id,
        "sent_at": now.isoformat(),
    }
    return text, payload


async def deliver(session: AsyncSession, *, deps: RouterDeps, request: DeliveryRequested) -> None:
    """delivery.requested: send one message on one channel, once, and record the proof."""
    if request.origin != "router":
        return  # rumor_control's adapters deliver bulletins
    now = deps.clock()
    fields = {
        "alert_id": str(request.aggregate_id),
        "notice_version": request.aggregate_version,
        "delivery_id": str(request.delivery_id),
        "recipient_id": str(request.recipient_id),
        "channel": request.channel,
        "purpose": request.purpose,
    }
    alert = await repo.get_alert(session, alert_id=request.aggregate_id)
    if alert is None:
        log.warning("alert.delivery_for_unknown_alert", **fields)
        return
    fields["notice_id"] = str(alert.notice_id)
    requested = await repo.notified_entry(
        session, alert_id=alert.id, delivery_id=request.delivery_id
    )
    if requested is None or requested.recipient_id != request.recipient_id:
        # Only what this router recorded asking for is sent: a request on the topic that
        # it never made (another deployment's, or forged) must not reach anyone.
        log.warning("alert.delivery_request_unknown", **fields)
        return
    position = requested.position

    async def claim(outcome: str) -> bool:
        return await repo.claim_delivery(
            session,
            delivery_id=request.delivery_id,
            alert_id=alert.id,
            notice_version=request.aggregate_version,
            purpose=request.purpose,
            recipient_id=request.recipient_id,
            channel=request.channel,
            outcome=outcome,
            at=now,
        )

    if not delivery_still_wanted(
        state=alert.state,
        alert_version=alert.notice_version,
        request_version=request.aggregate_version,
        purpose=request.purpose,
    ):
        if await claim("skipped"):
            await repo.add_timeline(
                session,
                alert_id=alert.id,
                kind="delivery_skipped",
                at=now,
                notice_version=request.aggregate_version,
                position=position,
                recipient_id=request.recipient_id,
                channel=request.channel,
                delivery_id=request.delivery_id,
                detail={"state": alert.state, "current_version": alert.notice_version},
            )
        log.info("alert.delivery_skipped", **fields, state=alert.state)
        return
    # The delivery id is the idempotency key: a second sight never sends again.
    if not await claim("sending"):
        log.info("alert.delivery_duplicate_skipped", **fields)
        return

    recipient = alert.snapshot.recipient(request.recipient_id)
    address = recipient.channels.address(request.channel) if recipient else None
    text, payload = _compose(deps, alert, request, now)
    attempt = deps.channels.count_attempt(request.delivery_id)
    try:
        if address is None:
            raise DeliveryError("no address for this channel in the snapshot", permanent=True)
        await deps.channels.send(
            channel=request.channel,
            address=address,
            subject=request.headline,
            text=text,
            payload=payload,
            delivery_id=request.delivery_id,
            language=request.language,
        )
    except DeliveryError as exc:
        DELIVERY_FAILURES.labels(request.channel, str(exc.permanent).lower()).inc()
        if not exc.permanent:
            # Raising rolls the claim back; the consumer retries with backoff, then the DLQ.
            log.warning("alert.delivery_retrying", **fields, attempt=attempt, error=str(exc))
            raise
        deps.channels.forget(request.delivery_id)
        await repo.finish_delivery(
            session,
            delivery_id=request.delivery_id,
            outcome="failed",
            attempts=attempt,
            at=now,
            error=str(exc)[:200],
        )
        await repo.add_timeline(
            session,
            alert_id=alert.id,
            kind="delivery_failed",
            at=now,
            notice_version=request.aggregate_version,
            position=position,
            recipient_id=request.recipient_id,
            channel=request.channel,
            delivery_id=request.delivery_id,
            detail={"error": str(exc)[:200], "attempts": attempt, "permanent": True},
        )
        log.error("alert.delivery_failed", **fields, attempts=attempt, error=str(exc))
        return

    deps.channels.forget(request.delivery_id)
    delivered_at = deps.clock()
    await repo.finish_delivery(
        session,
        delivery_id=request.delivery_id,
        outcome="delivered",
        attempts=attempt,
        at=delivered_at,
    )
    await repo.add_timeline(
        session,
        alert_id=alert.id,
        kind="delivered",
        at=delivered_at,
        notice_version=request.aggregate_version,
        position=position,
        recipient_id=request.recipient_id,
        channel=request.channel,
        delivery_id=request.delivery_id,
        detail={"attempts": attempt, "purpose": request.purpose},
    )
    if request.purpose != "cancel":
        # triggered -> delivered (only for the version this message carried)
        await repo.advance_state(
            session,
            alert.id,
            from_states=("triggered",),
            notice_version=request.aggregate_version,
            state="delivered",
            updated_at=delivered_at,
        )
    step = position.step if position else alert.step
    await enqueue(
        session,
        AlertDelivered(
            alert_id=alert.id,
            notice_id=alert.notice_id,
            notice_version=request.aggregate_version,
            status=request.status,
            step=step,
            recipient_id=request.recipient_id,
            channel=request.channel,
            attempts=attempt,
            delivered_at=delivered_at,
        ),
        source=deps.source,
    )
    DELIVERIES.labels(request.channel).inc()
    log.info("alert.delivered", **fields, step=step, attempts=attempt)


# --- acknowledgement ----------------------------------------------------------------


@dataclass(frozen=True)
class AckResult:
    """The alert after an acknowledgement, and whether it had been acknowledged already."""

    alert: repo.AlertRecord
    already: bool


async def acknowledge(
    *,
    deps: RouterDeps,
    alert_id: uuid.UUID,
    person_id: uuid.UUID,
    notice_version: int,
    method: AckMethod,
    comment: str | None = None,
) -> AckResult:
    """A recipient read `notice_version`: stop escalation (twice is harmless)."""
    now = deps.clock()
    async with deps.sessions() as session, session.begin():
        alert = await repo.get_alert(session, alert_id=alert_id, lock=True)
        if alert is None:
            raise AlertNotFound(str(alert_id))
        fields = _log_fields(alert, recipient_id=str(person_id), method=method)
        if not alert.snapshot.may_acknowledge(person_id):
            log.warning("alert.ack_refused_not_recipient", **fields)
            raise NotARecipient(str(person_id))
        if alert.state == "resolved":
            if alert.acknowledged_version == notice_version:
                return AckResult(alert, already=True)
            raise AlertClosed(resolution=alert.resolution)
        if notice_version < alert.notice_version:
            log.info("alert.ack_refused_stale_version", **fields, acked_version=notice_version)
            raise StaleVersion(
                current_version=alert.notice_version, alert_id=alert.id, notice_id=alert.notice_id
            )
        if notice_version > alert.notice_version:
            raise UnknownVersion(current_version=alert.notice_version)
        if alert.state == "acknowledged":
            log.info("alert.ack_repeated", **fields)
            return AckResult(alert, already=True)
        assert alert.state in ACKNOWLEDGEABLE_STATES
        # triggered | delivered | escalated | unacknowledged_exhausted -> acknowledged
        # Clearing the active escalation id is what stops a timer already in flight.
        await repo.update_alert(
            session,
            alert.id,
            state="acknowledged",
            acknowledged_version=notice_version,
            acknowledged_by=person_id,
            acknowledged_at=now,
            ack_method=method,
            next_fire_at=None,
            active_escalation_id=None,
            updated_at=now,
        )
        await repo.add_timeline(
            session,
            alert_id=alert.id,
            kind="acknowledged",
            at=now,
            notice_version=notice_version,
            position=alert.position,
            recipient_id=person_id,
            method=method,
            # The comment is free text: it stays in router, shown to contacts and admins.
            detail={"comment": comment, "previous_state": alert.state}
            if comment
            else {"previous_state": alert.state},
        )
        await enqueue(
            session,
            AlertAcknowledged(
                alert_id=alert.id,
                notice_id=alert.notice_id,
                notice_version=notice_version,
                status=alert.status,
                acknowledged_by=person_id,
                method=method,
                step=alert.step,
                acknowledged_at=now,
            ),
            source=deps.source,
            # The acknowledgement belongs to the notice's chain (its standby bulletin is
            # drafted from it), not to the click that carried it: keep the notice's id.
            correlation_id=alert.correlation_id,
        )
        updated = await _require(session, alert.id)
    waited = (now - alert.version_triggered_at).total_seconds()
    TIME_TO_ACKNOWLEDGE.labels(alert.urgency, str(is_drill(alert.status)).lower(), method).observe(
        max(waited, 0.0)
    )
    log.info(
        "alert.acknowledged",
        **fields,
        step=alert.step,
        repeat=alert.repeat,
        previous_state=alert.state,
        seconds_to_ack=round(waited, 3),
        with_comment=bool(comment),
    )
    return AckResult(updated, already=False)


@dataclass(frozen=True)
class LinkClaims:
    """What a verified one-click link says: this person may acknowledge this version."""

    alert_id: uuid.UUID
    notice_version: int
    person_id: uuid.UUID
    expires_at: datetime


def read_link(deps: RouterDeps, token: str) -> LinkClaims:
    """Verify a one-click token; raises LinkRejected (expired, tampered or malformed)."""
    try:
        claims = read_link_token([deps.link_secret], token, now=int(deps.clock().timestamp()))
    except LinkTokenError as exc:
        raise LinkRejected(exc.reason) from None
    try:
        version = claims["v"]
        if not isinstance(version, int):
            raise ValueError("version")
        return LinkClaims(
            alert_id=uuid.UUID(str(claims["a"])),
            notice_version=version,
            person_id=uuid.UUID(str(claims["p"])),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except (KeyError, ValueError):
        raise LinkRejected("malformed") from None


# --- escalation timers (the worker in escalation.py calls these) ------------------------


@dataclass(frozen=True)
class FiredTimer:
    """What one timer did."""

    alert_id: uuid.UUID
    fired: bool
    exhausted: bool = False
    lateness_s: float = 0.0
    drill: bool = False


async def fire_next_timer(*, deps: RouterDeps, skip: Sequence[str] = ()) -> FiredTimer | None:
    """Fire the most overdue escalation timer, if any is due; one transaction per timer."""
    now = deps.clock()
    async with deps.sessions() as session, session.begin():
        claimed = await repo.claim_due_timer(session, now=now, skip=skip)
        if claimed is None:
            return None
        alert_id, escalation_id = claimed
        try:
            result = await _fire(session, deps, alert_id, escalation_id, now)
        except Exception as exc:
            raise TimerFailed(alert_id) from exc
    if result.fired:
        TIMER_LATENESS.observe(max(result.lateness_s, 0.0))
        (ALERTS_EXHAUSTED if result.exhausted else ESCALATIONS).labels(
            str(result.drill).lower()
        ).inc()
    return result


async def _fire(
    session: AsyncSession,
    deps: RouterDeps,
    alert_id: uuid.UUID,
    escalation_id: str | None,
    now: datetime,
) -> FiredTimer:
    alert = await _require(session, alert_id)
    assert alert.next_fire_at is not None
    lateness = (now - alert.next_fire_at).total_seconds()
    outcome = next_step(alert.snapshot, alert.position, fired_at=now)
    with correlation_scope(alert.correlation_id), bound(correlation_id=alert.correlation_id):
        if outcome.position is None:
            fired = await _exhaust(session, alert, escalation_id, now, lateness)
        else:
            fired = await _escalate(session, deps, alert, escalation_id, outcome, now, lateness)
    return FiredTimer(
        alert.id,
        fired=fired,
        exhausted=fired and outcome.position is None,
        lateness_s=lateness,
        drill=is_drill(alert.status),
    )


async def _exhaust(
    session: AsyncSession,
    alert: repo.AlertRecord,
    escalation_id: str | None,
    now: datetime,
    lateness: float,
) -> bool:
    # triggered | delivered | escalated -> unacknowledged_exhausted
    fired = await repo.guarded_update(
        session,
        alert.id,
        expected_escalation_id=escalation_id,
        expected_states=OPEN_STATES,
        state="unacknowledged_exhausted",
        next_fire_at=None,
        active_escalation_id=None,
        exhausted_at=now,
        updated_at=now,
    )
    if not fired:
        return False
    await repo.add_timeline(
        session,
        alert_id=alert.id,
        kind="exhausted",
        at=now,
        notice_version=alert.notice_version,
        position=alert.position,
        detail={"escalation_count": alert.escalation_count},
    )
    # Loud on purpose: nobody acknowledged an operation notice. Ops must act.
    log.error(
        "alert.exhausted",
        **_log_fields(alert, step=alert.step, repeat=alert.repeat),
        escalation_count=alert.escalation_count,
        lateness_ms=round(lateness * 1000, 1),
    )
    return True


async def _escalate(
    session: AsyncSession,
    deps: RouterDeps,
    alert: repo.AlertRecord,
    escalation_id: str | None,
    outcome: StepOutcome,
    now: datetime,
    lateness: float,
) -> bool:
    position = outcome.position
    assert position is not None
    # triggered | delivered | escalated -> escalated
    # A fresh active escalation id: whoever still holds the old one can no longer fire.
    fired = await repo.guarded_update(
        session,
        alert.id,
        expected_escalation_id=escalation_id,
        expected_states=OPEN_STATES,
        state="escalated",
        step=position.step,
        repeat=position.repeat,
        escalation_count=alert.escalation_count + 1,
        next_fire_at=outcome.next_fire_at,
        active_escalation_id=str(uuid.uuid4()),
        updated_at=now,
    )
    if not fired:
        return False
    escalated = await _require(session, alert.id)
    recipient = alert.snapshot.target(position.step)
    await repo.add_timeline(
        session,
        alert_id=alert.id,
        kind="escalated",
        at=now,
        notice_version=alert.notice_version,
        position=position,
        recipient_id=recipient,
        detail={
            "escalation_count": escalated.escalation_count,
            "lateness_ms": round(lateness * 1000, 1),
        },
    )
    await enqueue(
        session,
        AlertEscalated(
            alert_id=alert.id,
            notice_id=alert.notice_id,
            notice_version=alert.notice_version,
            status=alert.status,
            step=position.step,
            repeat=position.repeat,
            escalation_count=escalated.escalation_count,
            recipient_id=recipient,
            escalated_at=now,
        ),
        source=deps.source,
        correlation_id=alert.correlation_id,
    )
    await _notify(
        session,
        deps,
        escalated,
        recipient_id=recipient,
        purpose="escalation",
        now=now,
        correlation_id=alert.correlation_id,
    )
    log.info(
        "alert.escalated",
        **_log_fields(alert, step=position.step, repeat=position.repeat),
        recipient_id=str(recipient),
        escalation_count=escalated.escalation_count,
        lateness_ms=round(lateness * 1000, 1),
    )
    return True


async def expire_next_alert(*, deps: RouterDeps, skip: Sequence[str] = ()) -> uuid.UUID | None:
    """Resolve one alert whose operation window has ended (nothing left to escalate for)."""
    now = deps.clock()
    async with deps.sessions() as session, session.begin():
        alert_id = await repo.claim_due_expiry(session, now=now, skip=skip)
        if alert_id is None:
            return None
        try:
            await _expire(session, deps, alert_id, now)
        except Exception as exc:
            raise TimerFailed(alert_id) from exc
    return alert_id


async def _expire(
    session: AsyncSession, deps: RouterDeps, alert_id: uuid.UUID, now: datetime
) -> None:
    alert = await _require(session, alert_id)
    acknowledged = alert.state == "acknowledged"
    with correlation_scope(alert.correlation_id), bound(correlation_id=alert.correlation_id):
        # any unresolved state -> resolved
        await repo.update_alert(
            session,
            alert.id,
            state="resolved",
            resolution="notice_expired",
            resolved_at=now,
            next_fire_at=None,
            active_escalation_id=None,
            updated_at=now,
        )
        await repo.add_timeline(
            session,
            alert_id=alert.id,
            kind="resolved",
            at=now,
            notice_version=alert.notice_version,
            detail={"reason": "notice_expired", "acknowledged": acknowledged},
        )
        await enqueue(
            session,
            AlertResolved(
                alert_id=alert.id,
                notice_id=alert.notice_id,
                notice_version=alert.notice_version,
                status=alert.status,
                reason="notice_expired",
                acknowledged=acknowledged,
                resolved_at=now,
            ),
            source=deps.source,
            correlation_id=alert.correlation_id,
        )
        log.info(
            "alert.resolved",
            **_log_fields(alert),
            reason="notice_expired",
            acknowledged=acknowledged,
        )


async def next_deadline(*, deps: RouterDeps) -> datetime | None:
    """The earliest pending timer or expiry."""
    async with deps.sessions() as session:
        return await repo.next_deadline(session)


async def refresh_alert_gauges(*, deps: RouterDeps) -> dict[str, int]:
    """Recount alerts by state for the open-alerts gauge."""
    async with deps.sessions() as session:
        counts = await repo.count_alerts_by_state(session)
    for state in (*sorted(ACKNOWLEDGEABLE_STATES), "acknowledged", "resolved"):
        ALERTS_BY_STATE.labels(state).set(counts.get(state, 0))
    OPEN_ALERTS.set(sum(counts.get(state, 0) for state in ACKNOWLEDGEABLE_STATES))
    return counts


# --- queries --------------------------------------------------------------------------


async def get_alert(*, deps: RouterDeps, alert_id: uuid.UUID) -> repo.AlertRecord:
    """One alert; raises AlertNotFound."""
    async with deps.sessions() as session:
        return await _require(session, alert_id)


async def list_alerts(
    *, deps: RouterDeps, states: Sequence[str], limit: int, offset: int
) -> list[repo.AlertRecord]:
    """Alerts, newest first."""
    async with deps.sessions() as session:
        return await repo.list_alerts(session, states=states, limit=limit, offset=offset)


async def alert_timeline(
    *, deps: RouterDeps, alert_id: uuid.UUID
) -> tuple[repo.AlertRecord, list[repo.TimelineEntry]]:
    """An alert and everything that happened to it."""
    async with deps.sessions() as session:
        alert = await _require(session, alert_id)
        return alert, await repo.read_timeline(session, alert_id)


# --- directory ------------------------------------------------------------------------


async def current_directory(*, deps: RouterDeps) -> repo.DirectoryVersion | None:
    """The directory in force."""
    async with deps.sessions() as session:
        return await repo.current_directory(session)


async def replace_directory(
    *,
    deps: RouterDeps,
    document: DirectoryDocument,
    source: Literal["api", "file", "cli"],
    created_by: str,
    expected_version: int | None = None,
) -> repo.DirectoryVersion:
    """Store a validated directory as the new current version (open alerts keep theirs)."""
    errors = validate_directory(document)
    if errors:
        raise InvalidDirectory(errors)
    now = deps.clock()
    try:
        async with deps.sessions() as session, session.begin():
            current = await repo.current_directory(session)
            current_version = current.version if current else 0
            if expected_version is not None and expected_version != current_version:
                raise DirectoryConflict(current_version=current_version)
            await repo.insert_directory(
                session,
                version=current_version + 1,
                document=document,
                digest=directory_digest(document),
                source=source,
                created_by=created_by,
                at=now,
            )
            stored = await repo.current_directory(session)
    except IntegrityError:
        async with deps.sessions() as session:
            latest = await repo.current_directory(session)
        raise DirectoryConflict(current_version=latest.version if latest else 0) from None
    assert stored is not None
    log.info(
        "directory.replaced",
        directory_version=stored.version,
        source=source,
        people=len(document.people),
        steps=len(document.policy.steps),
        repeat=document.policy.repeat,
        delegations=len(document.spoc.delegations),
    )
    return stored


async def load_directory_file(*, deps: RouterDeps, path: Path) -> int | None:
    """Apply the configured YAML file if it changed since it was last loaded.

    Returns the new version, or None when the file was unchanged (edits made through
    the API since then stay in force). An invalid file is reported loudly and the
    stored directory stays; with no stored directory at all, start-up fails.
    """
    try:
        document = read_directory_file(path)
    except (InvalidDirectory, OSError) as exc:
        errors = (
            [f"{e.path}: {e.message}" for e in exc.errors]
            if isinstance(exc, InvalidDirectory)
            else [type(exc).__name__]
        )
        async with deps.sessions() as session:
            stored = await repo.current_directory(session)
        log.error(
            "directory.file_invalid",
            path=str(path),
            errors=errors,
            keeping_version=stored.version if stored else None,
        )
        if stored is None:
            raise
        return None
    digest = directory_digest(document)
    async with deps.sessions() as session:
        if await repo.last_file_digest(session) == digest:
            log.info("directory.file_unchanged", path=str(path))
            return None
    try:
        stored = await replace_directory(
            deps=deps, document=document, source="file", created_by=f"file:{path.name}"
        )
    except DirectoryConflict:
        # Another instance loaded it at the same moment.
        async with deps.sessions() as session:
            if await repo.last_file_digest(session) == digest:
                return None
        raise
    return stored.version

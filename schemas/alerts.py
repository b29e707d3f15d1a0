"""Events of an alert on ``aviso.alerts.v1``, emitted by router.

One alert follows one notice: triggered -> delivered -> acknowledged -> resolved, escalated while
nobody acknowledges. A notice update re-triggers the same alert for the new notice version, which
must be acknowledged again. People are referred to only by their directory id.
"""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from schemas.base import EventData, Status
from schemas.deliveries import DeliveryFailureReason
from schemas.topics import ALERTS

__all__ = [
    "AckMethod",
    "AlertAcknowledged",
    "AlertChannel",
    "AlertDelivered",
    "AlertDeliveryFailed",
    "AlertEscalated",
    "AlertResolved",
    "AlertTriggered",
    "ResolutionReason",
    "Urgency",
]

Urgency = Literal["high", "normal"]
AlertChannel = Literal["webhook", "email", "sms"]
AckMethod = Literal["api", "link", "sms"]
ResolutionReason = Literal["notice_cancelled", "notice_expired"]


class _AlertEvent(EventData):
    """Fields every alert event carries."""

    topic: ClassVar[str] = ALERTS
    subject_field: ClassVar[str] = "alert_id"

    alert_id: UUID
    notice_id: UUID
    notice_version: int = Field(ge=1, description="Version of the notice this event concerns.")
    status: Status = Field(description="The notice's status; Exercise/Test alerts are drills.")


class AlertTriggered(_AlertEvent):
    """A notice version opened an alert that must be acknowledged.

    No restricted detail: people appear only as directory ids, the notice only by id.
    """

    event_type: ClassVar[str] = "alert.triggered"

    cause: Literal["notice.received", "notice.updated"] = Field(
        description="The notice event that triggered it; notice.updated re-opens an existing "
        "alert (same alert_id, higher notice_version)."
    )
    urgency: Urgency = Field(description="high when the operation starts soon.")
    step: int = Field(ge=0, description="Escalation step now notified; 0 is the first.")
    recipient_id: UUID = Field(description="Directory id of the person notified first.")
    delegated: bool = Field(
        description="Whether the recipient holds the SPOC role through a delegation window."
    )
    triggered_at: AwareDatetime


class AlertDelivered(_AlertEvent):
    """A notification of the alert reached a recipient over one channel.

    No restricted detail: no channel address, only the channel kind and a directory id.
    """

    event_type: ClassVar[str] = "alert.delivered"

    step: int = Field(ge=0, description="Escalation step the notification belongs to.")
    recipient_id: UUID = Field(description="Directory id of the person notified.")
    channel: AlertChannel = Field(description="The channel kind that succeeded.")
    attempts: int = Field(ge=1, description="Delivery attempts it took, this one included.")
    delivered_at: AwareDatetime


class AlertDeliveryFailed(_AlertEvent):
    """A notification of the alert did not reach a recipient over one channel.

    Every failed attempt is one event; `final` says that no further attempt will be made
    on this channel (the message was refused for good or its deadline passed).
    No restricted detail: no address and no receiver text, only a reason class.
    """

    event_type: ClassVar[str] = "alert.delivery_failed"

    step: int = Field(ge=0, description="Escalation step the notification belongs to.")
    recipient_id: UUID = Field(description="Directory id of the person not reached.")
    channel: AlertChannel = Field(description="The channel kind that failed.")
    reason: DeliveryFailureReason = Field(description="Why the attempt failed, as a class.")
    attempts: int = Field(ge=1, description="Delivery attempts so far, this one included.")
    final: bool = Field(description="True when this channel will not be tried again.")
    failed_at: AwareDatetime


class AlertEscalated(_AlertEvent):
    """Nobody acknowledged in time, so the next step of the frozen policy fired.

    No restricted detail: people appear only as directory ids.
    """

    event_type: ClassVar[str] = "alert.escalated"

    step: int = Field(ge=0, description="Index of the policy step that fired.")
    repeat: int = Field(ge=0, description="Pass through the policy; 0 is the first.")
    escalation_count: int = Field(ge=1, description="Escalations of this alert so far.")
    recipient_id: UUID = Field(description="Directory id of the person now notified.")
    escalated_at: AwareDatetime


class AlertAcknowledged(_AlertEvent):
    """A contact acknowledged the alert for one notice version; escalation stops.

    No restricted detail: the person is a directory id; any comment stays in router.
    """

    event_type: ClassVar[str] = "alert.acknowledged"

    acknowledged_by: UUID = Field(description="Directory id of the person who acknowledged.")
    method: AckMethod = Field(
        description="api: POST /v1/alerts/{id}/ack; link: signed link; sms: a reply by SMS."
    )
    step: int = Field(ge=0, description="Escalation step in force when acknowledged.")
    acknowledged_at: AwareDatetime


class AlertResolved(_AlertEvent):
    """The alert closed; nothing more will be sent for it.

    No restricted detail: only ids and the reason.
    """

    event_type: ClassVar[str] = "alert.resolved"

    reason: ResolutionReason = Field(description="Why the alert closed.")
    acknowledged: bool = Field(description="Whether the last notice version was acknowledged.")
    resolved_at: AwareDatetime

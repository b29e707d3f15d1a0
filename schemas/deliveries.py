"""Delivery requests on ``aviso.deliveries.v1``: what one recipient must receive on one channel.

Router (alerts to the SPOC and the escalation chain) and rumor_control (bulletins to liaisons
and the radio desk) decide *what* to send; channel adapters consume these requests and deliver
them by signed webhook or e-mail, with retries and the DLQ. A request names the recipient by id
only: adapters look the address up in their own service's directory, so no address or phone
number travels on a topic. The text is releasable by construction (rendered from releasable
fields); restricted detail is never in it: a recipient with the right role follows the link to
read it.
"""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from schemas.base import EventData, Language, Status
from schemas.topics import DELIVERIES

__all__ = [
    "DeliveryChannel",
    "DeliveryFailureReason",
    "DeliveryOrigin",
    "DeliveryPurpose",
    "DeliveryRequested",
]

DeliveryOrigin = Literal["router", "rumor_control"]
DeliveryChannel = Literal["webhook", "email"]
# Why an attempt failed, as a class: what an operator can act on, never an address or the
# receiver's own words (a response body could echo anything).
DeliveryFailureReason = Literal[
    "timeout",  # the receiver did not answer in time
    "unreachable",  # no connection (refused, DNS, TLS)
    "http_5xx",  # the receiver answered a server error, 408 or 429
    "http_4xx",  # the receiver refused the request for good
    "rejected",  # the mail relay refused the message or a recipient
    "circuit_open",  # not attempted: the destination failed repeatedly just before
    "no_address",  # the recipient has no address on this channel
    "expired",  # retried until the purpose's deadline without success
    "deferred",  # the mail relay asked us to come back later (SMTP 4xx)
    "invalid_address",  # the configured address cannot be used at all
    "internal",  # our side failed to prepare the message; retried
]
DeliveryPurpose = Literal[
    "alert", "escalation", "update", "cancel", "bulletin", "correction", "retraction"
]


class DeliveryRequested(EventData):
    """One recipient should receive one message on one channel.

    No restricted detail: recipients are ids, the text is rendered from releasable fields only.
    """

    event_type: ClassVar[str] = "delivery.requested"
    topic: ClassVar[str] = DELIVERIES
    subject_field: ClassVar[str] = "aggregate_id"

    delivery_id: UUID = Field(
        description="Idempotency key of this delivery: the same id is delivered at most once."
    )
    origin: DeliveryOrigin = Field(description="The service whose adapters deliver it.")
    aggregate_id: UUID = Field(description="The alert or bulletin this delivery belongs to.")
    aggregate_version: int = Field(ge=1, description="Version of the notice or bulletin sent.")
    purpose: DeliveryPurpose
    recipient_id: UUID = Field(description="Directory id of the recipient (person or liaison).")
    channel: DeliveryChannel
    language: Language = "en"
    status: Status = Field(description="Drills (Exercise/Test) start every message with DRILL.")
    headline: str = Field(min_length=1, max_length=300, description="Subject line / title.")
    body: str = Field(min_length=1, max_length=20000, description="Releasable message text.")
    requested_at: AwareDatetime

"""Events of a field-office notice on ``aviso.notices.v1``, emitted by intake.

A notice is versioned CAP-style: version 1 is ``notice.received`` (msgType Alert), each change is
``notice.updated`` (Update) and the cancellation is ``notice.cancelled`` (Cancel), each referencing
the earlier versions. The restricted detail intake holds (source, agent, names, addresses,
vehicles, exact locations, free text) never appears here; it is represented only by keyed
fingerprints so rumor_control can detect a leak without seeing the plaintext.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from schemas.base import (
    AreaCode,
    EventData,
    Fingerprint,
    MsgType,
    PolicyAnnotation,
    ReleasableLabel,
    ReleasableText,
    SortedUnique,
    Status,
    VersionRef,
    check_references,
)
from schemas.topics import NOTICES

__all__ = [
    "CancelReason",
    "NoticeCancelled",
    "NoticeReceived",
    "NoticeUpdated",
    "OperationType",
    "ReceivedVia",
]

OperationType = Literal["targeted_arrest", "worksite", "surveillance", "other"]
ReceivedVia = Literal["api", "phone", "email", "in_person"]
CancelReason = Literal[
    "operation_cancelled", "operation_postponed", "entered_in_error", "superseded", "other"
]


class _NoticeEvent(EventData):
    """Fields every notice event carries."""

    topic: ClassVar[str] = NOTICES
    subject_field: ClassVar[str] = "notice_id"

    notice_id: UUID
    msg_type: MsgType = Field(description="CAP msgType: Alert (version 1), Update or Cancel.")
    version: int = Field(ge=1, description="Version this event records; 1 is the first notice.")
    references: tuple[VersionRef, ...] = Field(
        description="Earlier versions of this notice this one follows (CAP references)."
    )
    status: Status = Field(
        description="Actual, or a drill (Exercise/Test) marked DRILL downstream."
    )
    sent_at: AwareDatetime = Field(
        description="When the field office issued this version (CAP sent); the receipt time "
        "when the source gave none."
    )
    received_at: AwareDatetime = Field(description="When intake recorded this version.")

    def _check_version_chain(self) -> None:
        if self.msg_type == "Alert" and (self.version != 1 or self.references):
            raise ValueError("an Alert is version 1 and references no earlier version")
        if self.msg_type != "Alert" and (self.version < 2 or not self.references):
            raise ValueError("an Update or Cancel is version >= 2 and references earlier versions")
        check_references(
            self.references, aggregate_id=self.notice_id, version=self.version, same_aggregate=True
        )


class _NoticeSnapshot(_NoticeEvent):
    """The releasable content of one notice version."""

    received_via: ReceivedVia = Field(description="How the notice reached the department.")
    operation_type: OperationType
    public_safety_nexus: bool = Field(
        description="Whether the operation concerns a serious crime with a public-safety nexus."
    )
    window_start: AwareDatetime = Field(description="Announced start of the operation window.")
    window_end: AwareDatetime = Field(description="Announced end of the operation window.")
    area: ReleasableLabel = Field(
        description="Releasable description of the area, such as a neighbourhood or district; "
        "never an exact location.",
    )
    area_code: AreaCode | None = Field(
        default=None, description="Gazetteer id of the area when it matched one."
    )
    summary: ReleasableText = Field(description="Releasable summary of the notice.")
    policy_annotations: tuple[PolicyAnnotation, ...] = Field(
        description="Statements of department policy that apply to this notice."
    )
    restricted_fingerprints: Annotated[tuple[Fingerprint, ...], SortedUnique] = Field(
        description="Keyed fingerprints (schemas.fingerprints.fingerprint_term) of every "
        "restricted term of this version, sorted; consumers keep the union over all versions."
    )
    fingerprint_key_id: str = Field(
        min_length=1,
        max_length=64,
        description="Id of the HMAC key that made restricted_fingerprints, so keys can rotate.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        self._check_version_chain()
        return self


class NoticeReceived(_NoticeSnapshot):
    """A new notice of a federal operation was recorded (version 1).

    No restricted detail: no names, addresses, vehicles, exact locations, agent or field office.
    """

    event_type: ClassVar[str] = "notice.received"

    msg_type: Literal["Alert"] = Field(
        default="Alert", description="Always Alert: the first version."
    )


class NoticeUpdated(_NoticeSnapshot):
    """A notice changed; this is the full releasable content of the new version.

    No restricted detail: no names, addresses, vehicles, exact locations, agent or field office.
    """

    event_type: ClassVar[str] = "notice.updated"

    msg_type: Literal["Update"] = Field(default="Update", description="Always Update.")


class NoticeCancelled(_NoticeEvent):
    """The field office cancelled a notice; the cancellation is its last version.

    No restricted detail: no names, addresses, vehicles, exact locations, agent or field office.
    """

    event_type: ClassVar[str] = "notice.cancelled"

    msg_type: Literal["Cancel"] = Field(default="Cancel", description="Always Cancel.")
    reason: CancelReason = Field(description="Why the notice was cancelled.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        self._check_version_chain()
        return self

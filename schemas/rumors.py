"""Events of the rumor ledger on ``aviso.rumors.v1``, emitted by rumor_control.

Reports about the same place and time cluster into one rumor: reported -> assessed (and
re-assessed as facts change). The claim as heard, the place as heard and the reporter stay in
rumor_control: they may name people or addresses. Places appear only as gazetteer areas.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from schemas.base import AreaCode, EventData, ReleasableLabel, SortedUnique, Status
from schemas.topics import RUMORS

__all__ = ["RumorAssessed", "RumorAssessment", "RumorChannel", "RumorReported"]

RumorChannel = Literal["phone_line", "radio", "community_leader", "social_media", "walk_in"]
RumorAssessment = Literal["Confirmed", "Not confirmed", "False", "Unable to verify"]


class _RumorEvent(EventData):
    """Fields every rumor event carries."""

    topic: ClassVar[str] = RUMORS
    subject_field: ClassVar[str] = "rumor_id"

    rumor_id: UUID
    status: Status = Field(description="Actual, or a drill (Exercise/Test) never made public.")
    area_code: AreaCode | None = Field(
        default=None,
        description="Gazetteer id of the area the rumor is about; null when no area matched.",
    )
    area: ReleasableLabel | None = Field(
        default=None,
        description="Gazetteer name of that area; null when no area matched. Never the place as "
        "heard.",
    )


class RumorReported(_RumorEvent):
    """A report was added to a rumor (the first report opens it).

    No restricted detail: no claim text, place as heard, reporter or organisation.
    """

    event_type: ClassVar[str] = "rumor.reported"

    report_id: UUID
    channel: RumorChannel = Field(description="How this report reached the department.")
    channels: Annotated[tuple[RumorChannel, ...], SortedUnique] = Field(
        min_length=1, description="Every channel the rumor has been reported on so far, sorted."
    )
    report_count: int = Field(ge=1, description="Reports clustered into this rumor so far.")
    first_reported_at: AwareDatetime = Field(description="When the rumor's first report came in.")
    reported_at: AwareDatetime = Field(description="When this report came in.")
    observed_at: AwareDatetime | None = Field(
        default=None, description="When the reporter says the activity was seen or heard, if given."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.channel not in self.channels:
            raise ValueError("channels must include this report's channel")
        if self.reported_at < self.first_reported_at:
            raise ValueError("reported_at is before first_reported_at")
        return self


class RumorAssessed(_RumorEvent):
    """A vetter set the rumor's status, valid as of a time until it expires.

    No restricted detail: the vetter appears as an id, notices only by id.
    """

    event_type: ClassVar[str] = "rumor.assessed"

    assessment: RumorAssessment = Field(description="The rumor's status as set by the vetter.")
    revision: int = Field(ge=1, description="1 for the first assessment, +1 for each later one.")
    as_of: AwareDatetime = Field(description="The time the assessment describes.")
    expires_at: AwareDatetime = Field(description="When the assessment must be re-checked.")
    assessed_by: UUID = Field(description="Id of the vetter who set the status.")
    linked_notice_ids: Annotated[tuple[UUID, ...], SortedUnique] = Field(
        description="Notices the vetter linked to this rumor, sorted."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.expires_at <= self.as_of:
            raise ValueError("expires_at must be after as_of")
        return self

"""Events of a bulletin on ``aviso.bulletins.v1``, emitted by rumor_control.

drafted -> approved | rejected; approved -> published -> updated (a new version) | retracted
(CAP Cancel). Only ``bulletin.published`` carries text, and only the approved, releasable text
in each language: before approval a draft may still hold something a guardrail will block.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from schemas.base import (
    AreaCode,
    ContractModel,
    EventData,
    Language,
    MsgType,
    ReasonCode,
    ReleasableLabel,
    SortedUnique,
    Status,
    VersionRef,
    check_references,
    is_drill,
)
from schemas.deliveries import DeliveryChannel, DeliveryFailureReason
from schemas.topics import BULLETINS

__all__ = [
    "BulletinApproved",
    "BulletinDeliveryFailed",
    "BulletinDrafted",
    "BulletinKind",
    "BulletinPublished",
    "BulletinRejected",
    "BulletinRetracted",
    "BulletinText",
    "LanguageSignoff",
    "PublishChannel",
]

BulletinKind = Literal["standby", "rumor_fact", "correction"]
# drill_audience: people inside the department a drill goes to instead (never the public).
PublishChannel = Literal["liaison", "radio", "public_feed", "drill_audience"]
_Languages = Annotated[tuple[Language, ...], SortedUnique]


class LanguageSignoff(ContractModel):
    """A vetter's sign-off of one language version.

    No restricted detail: the vetter appears as an id.
    """

    language: Language
    signed_off_by: UUID = Field(description="Id of the vetter who signed this language off.")
    signed_off_at: AwareDatetime


class BulletinText(ContractModel):
    """The approved, releasable text of a bulletin in one language.

    No restricted detail: it passed the leak, PII and parity guardrails and a vetter.
    """

    language: Language
    headline: ReleasableLabel
    body: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]


class _BulletinEvent(EventData):
    """Fields every bulletin event carries."""

    topic: ClassVar[str] = BULLETINS
    subject_field: ClassVar[str] = "bulletin_id"

    bulletin_id: UUID
    version: int = Field(ge=1, description="Bulletin version; each update is a new version.")
    msg_type: MsgType = Field(description="CAP msgType of this version.")
    references: tuple[VersionRef, ...] = Field(
        description="Earlier bulletin versions this one updates or cancels (CAP references)."
    )
    status: Status = Field(description="Actual, or a drill (Exercise/Test) never made public.")
    kind: BulletinKind = Field(
        description="standby: ready before rumors; rumor_fact: answers a rumor; correction."
    )
    rumor_id: UUID | None = Field(
        default=None, description="The rumor a rumor_fact bulletin answers."
    )
    notice_ids: Annotated[tuple[UUID, ...], SortedUnique] = Field(
        description="Notices the bulletin relates to, sorted; their fingerprints guard its text."
    )

    @model_validator(mode="after")
    def _check_version_chain(self) -> Self:
        if self.msg_type == "Alert" and (self.version != 1 or self.references):
            raise ValueError("an Alert is version 1 and references no earlier version")
        if self.msg_type != "Alert" and not self.references:
            raise ValueError("an Update or Cancel references the versions it replaces")
        check_references(
            self.references,
            aggregate_id=self.bulletin_id,
            version=self.version,
            same_aggregate=False,
        )
        if self.kind == "rumor_fact" and self.rumor_id is None:
            raise ValueError("a rumor_fact bulletin names its rumor_id")
        return self


class BulletinDrafted(_BulletinEvent):
    """A bulletin version was drafted (or edited) from a pre-vetted template.

    No restricted detail and no text: the draft stays in rumor_control until approved.
    """

    event_type: ClassVar[str] = "bulletin.drafted"

    languages: _Languages = Field(min_length=1, description="Languages drafted, sorted.")
    template_id: ReasonCode = Field(description="Id of the pre-vetted template used.")
    author_id: UUID | None = Field(
        default=None,
        description="Id of the person who drafted or last edited it; null when drafted "
        "automatically.",
    )
    blocked_reasons: Annotated[tuple[ReasonCode, ...], SortedUnique] = Field(
        description="Guardrail reason codes that currently block approval, sorted; empty when "
        "none does."
    )
    drafted_at: AwareDatetime


class BulletinApproved(_BulletinEvent):
    """A vetter other than the author approved the bulletin with every language signed off.

    No restricted detail: people appear as ids.
    """

    event_type: ClassVar[str] = "bulletin.approved"

    languages: _Languages = Field(min_length=1, description="Languages approved, sorted.")
    signoffs: tuple[LanguageSignoff, ...] = Field(
        min_length=1, description="One sign-off per language."
    )
    author_id: UUID | None = Field(
        default=None, description="Id of the draft's author; null if automatic."
    )
    approved_by: UUID = Field(description="Id of the approving vetter, never the author.")
    approved_at: AwareDatetime

    @model_validator(mode="after")
    def _check_signoffs(self) -> Self:
        signed = [signoff.language for signoff in self.signoffs]
        if sorted(signed) != sorted(self.languages):
            raise ValueError("exactly one sign-off per approved language is required")
        vetters = {self.approved_by, *(signoff.signed_off_by for signoff in self.signoffs)}
        if self.author_id is not None and self.author_id in vetters:
            raise ValueError("the author cannot approve or sign off their own draft")
        return self


class BulletinRejected(_BulletinEvent):
    """A vetter rejected the draft.

    No restricted detail: reasons are codes, never the vetter's comment.
    """

    event_type: ClassVar[str] = "bulletin.rejected"

    rejected_by: UUID = Field(description="Id of the vetter who rejected it.")
    reason_codes: Annotated[tuple[ReasonCode, ...], SortedUnique] = Field(
        min_length=1, description="Why it was rejected (guardrail or vetter codes), sorted."
    )
    rejected_at: AwareDatetime


class BulletinPublished(_BulletinEvent):
    """An approved bulletin version was released to its channels, with its public text.

    No restricted detail: the text is what the department published.
    """

    event_type: ClassVar[str] = "bulletin.published"

    texts: tuple[BulletinText, ...] = Field(
        min_length=1, description="The published text, one entry per language."
    )
    channels: Annotated[tuple[PublishChannel, ...], SortedUnique] = Field(
        min_length=1,
        description="Channels it was released to, sorted; a drill only to drill_audience.",
    )
    area_code: AreaCode | None = Field(
        default=None, description="Gazetteer id of the area it concerns."
    )
    area: ReleasableLabel | None = Field(
        default=None, description="Gazetteer name of the area it concerns."
    )
    approved_by: UUID = Field(description="Id of the vetter who approved this version.")
    published_at: AwareDatetime
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the bulletin stops being current."
    )

    @model_validator(mode="after")
    def _check_release(self) -> Self:
        languages = [text.language for text in self.texts]
        if len(set(languages)) != len(languages):
            raise ValueError("at most one text per language")
        if is_drill(self.status) and "public_feed" in self.channels:
            raise ValueError("a drill bulletin is never published to the public feed")
        if not is_drill(self.status) and "drill_audience" in self.channels:
            raise ValueError("only a drill goes to the drill audience")
        if self.expires_at is not None and self.expires_at <= self.published_at:
            raise ValueError("expires_at must be after published_at")
        return self

    def text(self, language: Language) -> BulletinText:
        """Return the text in ``language`` or raise KeyError."""
        for text in self.texts:
            if text.language == language:
                return text
        raise KeyError(language)


class BulletinRetracted(_BulletinEvent):
    """A published bulletin was withdrawn; this version is its CAP Cancel.

    No restricted detail: the reason is a code, the vetter an id.
    """

    event_type: ClassVar[str] = "bulletin.retracted"

    msg_type: Literal["Cancel"] = Field(default="Cancel", description="Always Cancel.")
    retracted_by: UUID = Field(description="Id of the vetter who retracted it.")
    reason_code: ReasonCode = Field(description="Why it was retracted.")
    retracted_at: AwareDatetime


class BulletinDeliveryFailed(EventData):
    """A published bulletin version did not reach a liaison or the radio desk on one channel.

    Every failed attempt is one event; `final` says that no further attempt will be made on
    this channel.
    No restricted detail: recipients are directory ids, no address, only a reason class.
    """

    event_type: ClassVar[str] = "bulletin.delivery_failed"
    topic: ClassVar[str] = BULLETINS
    subject_field: ClassVar[str] = "bulletin_id"

    bulletin_id: UUID
    version: int = Field(ge=1, description="Bulletin version that was being delivered.")
    status: Status = Field(description="Actual, or a drill (Exercise/Test).")
    recipient_id: UUID = Field(description="Directory id of the liaison or radio desk.")
    channel: DeliveryChannel = Field(description="The channel kind that failed.")
    reason: DeliveryFailureReason = Field(description="Why the attempt failed, as a class.")
    attempts: int = Field(ge=1, description="Delivery attempts so far, this one included.")
    final: bool = Field(description="True when this channel will not be tried again.")
    failed_at: AwareDatetime

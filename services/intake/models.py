"""The HTTP contract of intake: request bodies (strict) and response shapes.

Requests reject unknown fields, control characters (PostgreSQL cannot store NUL, and a
line break in a name is never meant), timestamps without a zone or outside 2000-2100,
and a window that ends before it starts; pydantic itself refuses lone surrogates.
Timestamps are normalised to UTC on the way in, so equal content always digests
equally for idempotency.

Responses: `NoticeSummary` (list items) and `NoticeView` (detail, with history) hold
releasable fields only; they are what `ops` and field offices see, and restricted
fields are absent from them, not blank. `RestrictedNoticeView` adds the source and
restricted detail for `contact`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

from schemas.base import AreaCode, MsgType, PolicyAnnotation, Status
from schemas.notices import CancelReason, OperationType, ReceivedVia
from services.intake.domain import NoticeState

__all__ = [
    "IDEMPOTENCY_KEY_PATTERN",
    "MAX_TERMS",
    "AgentIn",
    "AgentView",
    "NoticeCancellation",
    "NoticeContent",
    "NoticePage",
    "NoticeRevision",
    "NoticeSubmission",
    "NoticeSummary",
    "NoticeView",
    "RestrictedIn",
    "RestrictedNoticeView",
    "RestrictedView",
    "SourceIn",
    "SourceView",
    "Term",
    "UtcDatetime",
    "VersionView",
]

_EARLIEST_YEAR = 2000
_LATEST_YEAR = 2100
MAX_TERMS = 50


def _check_text(value: str, *, multiline: bool) -> str:
    allowed = {"\n", "\r", "\t"} if multiline else set()
    for char in value:
        if unicodedata.category(char) == "Cc" and char not in allowed:
            raise ValueError("text contains a control character")
    value = value.strip()
    if not value:
        raise ValueError("text is blank")
    return value


def _line(value: str) -> str:
    return _check_text(value, multiline=False)


def _prose(value: str) -> str:
    return _check_text(value, multiline=True)


def _utc(value: datetime) -> datetime:
    # Bounded first: converting year 1 or 9999 with an offset would overflow.
    if not _EARLIEST_YEAR <= value.year <= _LATEST_YEAR:
        raise ValueError(f"year must be between {_EARLIEST_YEAR} and {_LATEST_YEAR}")
    return value.astimezone(UTC)


Line = Annotated[str, StringConstraints(max_length=200), AfterValidator(_line)]
Term = Annotated[str, StringConstraints(max_length=300), AfterValidator(_line)]
Prose = Annotated[str, StringConstraints(max_length=4000), AfterValidator(_prose)]
Summary = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_prose)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
Phone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 ()./-]{2,38}$"),
]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+$"),
]
Reference = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,99}$"),
    Field(description="The field office's own reference, unique per field office."),
]
IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentIn(_Request):
    """The reporting agent (restricted)."""

    name: Line
    phone: Phone | None = None
    email: Email | None = None


class SourceIn(_Request):
    """Who sent the notice (restricted). The field office id comes from the token."""

    field_office_name: Line
    agent: AgentIn


class RestrictedIn(_Request):
    """Restricted detail: whatever identifies a person, address, vehicle or exact target."""

    names: list[Term] = Field(default_factory=list, max_length=MAX_TERMS)
    addresses: list[Term] = Field(default_factory=list, max_length=MAX_TERMS)
    vehicles: list[Term] = Field(default_factory=list, max_length=MAX_TERMS)
    exact_locations: list[Term] = Field(default_factory=list, max_length=MAX_TERMS)
    free_text: Prose | None = None


class NoticeContent(_Request):
    """What a notice version says (shared by submission and revision)."""

    received_via: ReceivedVia = Field(
        default="api", description="How it reached the department; staff record phone calls."
    )
    sent_at: UtcDatetime | None = Field(
        default=None, description="When the field office issued it (default: when received)."
    )
    status: Status = Field(description="Actual, or a drill: Exercise or Test.")
    operation_type: OperationType
    public_safety_nexus: StrictBool = Field(
        description="Whether a serious crime with a public-safety nexus is involved."
    )
    window_start: UtcDatetime
    window_end: UtcDatetime
    area: Line = Field(description="Releasable area: a neighbourhood or police district.")
    area_code: AreaCode | None = None
    summary: Summary = Field(description="Releasable summary.")
    source: SourceIn
    restricted: RestrictedIn = Field(default_factory=RestrictedIn)

    @model_validator(mode="after")
    def _window_in_order(self) -> Self:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self

    def content(self) -> dict[str, Any]:
        """The content compared for idempotency (JSON-ready, UTC timestamps)."""
        return self.model_dump(mode="json", include=set(NoticeContent.model_fields))


class NoticeSubmission(NoticeContent):
    """`POST /v1/notices`: a new notice (version 1, CAP Alert)."""

    reference: Reference


class NoticeRevision(NoticeContent):
    """`POST /v1/notices/{id}/update`: the full content of the next version (CAP Update)."""

    expected_version: StrictInt | None = Field(
        default=None, ge=1, description="Refuse the update unless the notice is at this version."
    )


class NoticeCancellation(_Request):
    """`POST /v1/notices/{id}/cancel`: the last version (CAP Cancel)."""

    reason: CancelReason
    received_via: ReceivedVia = "api"
    sent_at: UtcDatetime | None = None
    expected_version: StrictInt | None = Field(default=None, ge=1)

    def content(self) -> dict[str, Any]:
        """The content compared for idempotency."""
        return self.model_dump(mode="json", exclude={"expected_version"})


# --- responses -------------------------------------------------------------------


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VersionView(_View):
    """One version of a notice, CAP-style (releasable fields)."""

    version: int
    msg_type: MsgType
    references: list[str]
    status: Status
    received_via: ReceivedVia
    sent_at: datetime
    received_at: datetime
    operation_type: OperationType
    public_safety_nexus: bool
    window_start: datetime
    window_end: datetime
    area: str
    area_code: str | None
    summary: str
    cancel_reason: CancelReason | None
    policy_annotations: list[PolicyAnnotation]
    restricted_changed: bool = Field(
        description="Whether this version changed the restricted detail."
    )


class NoticeSummary(_View):
    """A notice's releasable state, as listed."""

    id: str
    reference: str
    version: int
    msg_type: MsgType
    state: NoticeState = Field(description="received, updated, cancelled or expired.")
    status: Status
    drill: bool = Field(description="Exercise or Test: marked DRILL, never public.")
    received_via: ReceivedVia
    sent_at: datetime
    received_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    operation_type: OperationType
    public_safety_nexus: bool
    window_start: datetime
    window_end: datetime
    area: str
    area_code: str | None
    summary: str
    cancel_reason: CancelReason | None


class NoticeView(NoticeSummary):
    """One notice with its history, releasable fields only: what ops and field offices see."""

    policy_annotations: list[PolicyAnnotation] = Field(
        description="Department policy statements that apply (frozen when recorded)."
    )
    policy_version: str
    history: list[VersionView] = Field(description="Every version, oldest first.")


class AgentView(_View):
    """The reporting agent."""

    name: str
    phone: str | None
    email: str | None


class SourceView(_View):
    """Who sent the notice and who recorded it."""

    field_office_id: str
    field_office_name: str
    agent: AgentView
    recorded_by: str


class RestrictedView(_View):
    """Restricted detail of the current version."""

    names: list[str]
    addresses: list[str]
    vehicles: list[str]
    exact_locations: list[str]
    free_text: str | None


class RestrictedNoticeView(NoticeView):
    """A notice with its source and restricted detail: only `contact` sees this (audited)."""

    source: SourceView | None = Field(description="Null once purged after retention.")
    restricted: RestrictedView | None = Field(description="Null once purged after retention.")
    restricted_purged_at: datetime | None


class NoticePage(_View):
    """A page of notices, newest first."""

    items: list[NoticeSummary]
    limit: int
    offset: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )

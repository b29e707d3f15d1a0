"""What a field office sends: the request bodies, which are also the use cases' commands.

Requests reject unknown fields, text the shared hygiene rules refuse (services/common/
text.py: control, XML-invalid and, in single-line fields, line-separator characters; text
is NFC-normalised), timestamps that are not zoned strings in 2000-2100
(services/common/bounds.py), and a window that ends before it starts. Timestamps are
normalised to UTC on the way in, so equal content always digests equally for idempotency.

The same models parse `POST /v1/notices` bodies (http/notices.py) and the CLI's input
(cli.py); the response shapes live with the routes in http/views.py.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

from schemas.base import AreaCode, Status
from schemas.notices import CancelReason, OperationType, ReceivedVia
from services.common.bounds import BoundedDatetime
from services.common.text import MultiLine, SingleLine, clean_line

__all__ = [
    "IDEMPOTENCY_KEY_PATTERN",
    "MAX_TERMS",
    "AgentIn",
    "NoticeCancellation",
    "NoticeContent",
    "NoticeRevision",
    "NoticeSubmission",
    "RestrictedIn",
    "SourceIn",
    "Term",
    "UtcDatetime",
]

MAX_TERMS = 50


Line = Annotated[SingleLine, StringConstraints(max_length=200)]
Term = Annotated[SingleLine, StringConstraints(max_length=300)]
Prose = Annotated[MultiLine, StringConstraints(max_length=4000)]
Summary = Annotated[MultiLine, StringConstraints(max_length=2000)]
UtcDatetime = BoundedDatetime
Phone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 ()./-]{2,38}$"),
]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+$"),
    AfterValidator(clean_line),
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

    def releasable(self) -> dict[str, str | None]:
        """The free-text fields that travel on topics and to every reader, by field name."""
        return {"area": self.area, "summary": self.summary}


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

"""Pure rules of rumor control: clustering, suggestions, vetting checks, ids. No I/O here.

Rumor: reported -> assessed (re-assessed as facts change; an assessment expires).
Bulletin version: drafted -> published (on approval) | rejected; a published bulletin is
updated by a new version (CAP Update) or retracted by one (CAP Cancel).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from schemas.base import Language, Status, is_drill, version_ref
from schemas.bulletins import PublishChannel
from schemas.deliveries import DeliveryChannel
from schemas.fingerprints import fingerprint_key_id
from schemas.rumors import RumorAssessment
from services.rumor_control.gazetteer import Gazetteer

__all__ = [
    "LANGUAGES",
    "NAMESPACE",
    "Actor",
    "NoticeFacts",
    "ReportTime",
    "RumorCandidate",
    "RumorFacts",
    "Suggestion",
    "VettingError",
    "bulletin_status",
    "channels_for",
    "check_approval",
    "check_editable",
    "check_sign_off",
    "choose_rumor",
    "delivery_id",
    "fingerprint_key_id",
    "missing_signoffs",
    "person_id",
    "references_for",
    "suggest_assessment",
]

LANGUAGES: tuple[Language, ...] = ("en", "es")

# Stable ids derived from names: a person behind several tokens is still one person, and a
# delivery retried after a crash keeps its id so the receiver can drop the duplicate.
NAMESPACE = uuid.UUID("0b9f6a52-4a4e-5c1e-9d1e-6176697360aa")


@dataclass(frozen=True)
class Actor:
    """The person acting, as the audit log names them."""

    id: uuid.UUID
    name: str
    role: str


def person_id(subject: str) -> uuid.UUID:
    """The id of the person a token acts for (its subject), the same across their tokens."""
    try:
        return uuid.UUID(subject)
    except ValueError:
        return uuid.uuid5(NAMESPACE, f"person:{subject}")


def delivery_id(
    bulletin_id: uuid.UUID, version: int, recipient_id: uuid.UUID, channel: DeliveryChannel
) -> uuid.UUID:
    """Deterministic id of one delivery: the same bulletin version, recipient and channel."""
    return uuid.uuid5(NAMESPACE, f"delivery:{bulletin_id}:{version}:{recipient_id}:{channel}")


# -- clustering ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RumorCandidate:
    """An open rumor a new report might join."""

    rumor_id: uuid.UUID
    first_observed_at: datetime
    last_observed_at: datetime


def choose_rumor(
    candidates: Iterable[RumorCandidate], *, observed_at: datetime, window: timedelta
) -> uuid.UUID | None:
    """The rumor a report of the same place joins: within `window` of its reports' times,
    the nearest one when several are. Candidates are already of the same place and status."""
    best: tuple[timedelta, uuid.UUID] | None = None
    for candidate in candidates:
        if observed_at < candidate.first_observed_at - window:
            continue
        if observed_at > candidate.last_observed_at + window:
            continue
        if candidate.first_observed_at <= observed_at <= candidate.last_observed_at:
            distance = timedelta(0)
        else:
            distance = min(
                abs(observed_at - candidate.first_observed_at),
                abs(observed_at - candidate.last_observed_at),
            )
        if best is None or distance < best[0]:
            best = (distance, candidate.rumor_id)
    return None if best is None else best[1]


# -- suggestions from notices ---------------------------------------------------------------


@dataclass(frozen=True)
class NoticeFacts:
    """What the projection knows of a notice (releasable fields only)."""

    notice_id: uuid.UUID
    status: Status
    area_code: str | None
    window_start: datetime | None
    window_end: datetime | None
    cancelled: bool


@dataclass(frozen=True)
class ReportTime:
    """When one report places its claim: the claim's own time (when the activity was seen,
    or is said to happen: it may lie ahead), else only when the report was made."""

    claimed_at: datetime | None
    reported_at: datetime

    def relates_to(self, start: datetime, end: datetime, *, slack: timedelta,
                   anticipation: timedelta) -> bool:  # fmt: skip
        """Whether this report points at the window [start, end]: the claim's time within
        `slack` of it; without one, the report time within `slack` of it or up to
        `anticipation` before it starts (a rumor heard today about tomorrow's operation)."""
        if self.claimed_at is not None:
            return start - slack <= self.claimed_at <= end + slack
        return start - max(slack, anticipation) <= self.reported_at <= end + slack


@dataclass(frozen=True)
class RumorFacts:
    """What a suggestion needs to know of a rumor: its place and each report's time."""

    status: Status
    area_code: str | None
    times: tuple[ReportTime, ...]


@dataclass(frozen=True)
class Suggestion:
    """A status the vetter may choose; never applied automatically."""

    assessment: RumorAssessment
    notice_ids: tuple[uuid.UUID, ...]
    reason_code: str


def suggest_assessment(
    rumor: RumorFacts,
    notices: Sequence[NoticeFacts],
    *,
    gazetteer: Gazetteer,
    slack: timedelta,
    anticipation: timedelta = timedelta(0),
) -> Suggestion:
    """Correlate a rumor with known notices by place and time (docs/operations.md).

    A notice is related when its area overlaps the rumor's (same area, or a neighbourhood
    of the notice's district) and some report points at its window (`ReportTime`): the
    claim's time in or near it, or, for a claim with no time, a report made in or near it
    or ahead of it. Related live notices suggest Confirmed; only cancelled ones suggest
    False; none suggests Not confirmed - the department knows only what the field office
    told it. Drills match drills only.
    """
    related = [
        notice
        for notice in notices
        if is_drill(notice.status) == is_drill(rumor.status)
        and gazetteer.overlaps(notice.area_code, rumor.area_code)
        and notice.window_start is not None
        and notice.window_end is not None
        and any(
            time.relates_to(
                notice.window_start, notice.window_end, slack=slack, anticipation=anticipation
            )
            for time in rumor.times
        )
    ]
    live = tuple(sorted(n.notice_id for n in related if not n.cancelled))
    if live:
        return Suggestion("Confirmed", live, "suggest.notice_overlaps")
    cancelled = tuple(sorted(n.notice_id for n in related if n.cancelled))
    if cancelled:
        return Suggestion("False", cancelled, "suggest.notice_cancelled")
    if rumor.area_code is None:
        return Suggestion("Unable to verify", (), "suggest.place_unknown")
    return Suggestion("Not confirmed", (), "suggest.no_matching_notice")


# -- bulletins ------------------------------------------------------------------------------


def bulletin_status(statuses: Iterable[Status]) -> Status:
    """A bulletin is a drill when anything it draws on is: drills must never go public."""
    found = list(statuses)
    for drill_status in ("Exercise", "Test"):
        if drill_status in found:
            return drill_status
    return "Actual"


def channels_for(status: Status) -> tuple[PublishChannel, ...]:
    """Where a bulletin goes: a real one to liaisons, the radio desk and the public feeds; a
    drill only to the department's drill audience (it stays inside the department)."""
    if is_drill(status):
        return ("drill_audience",)
    return ("liaison", "public_feed", "radio")


def references_for(bulletin_id: uuid.UUID, published_versions: Iterable[int]) -> tuple[str, ...]:
    """CAP references of a new version: every earlier version that was published."""
    return tuple(version_ref(bulletin_id, v) for v in sorted(set(published_versions)))


# -- vetting --------------------------------------------------------------------------------


class VettingError(Exception):
    """A vetting step that is not allowed; `code` is shown to the vetter."""

    def __init__(self, code: str, detail: str, *, forbidden: bool = False) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail
        self.forbidden = forbidden


def check_editable(state: str) -> None:
    """Drafts are edited in place and published versions by a new version; nothing else."""
    if state not in ("drafted", "published"):
        raise VettingError("vetting.not_editable", f"a {state} bulletin cannot be edited")


def _check_vetter(
    *,
    state: str,
    author_id: uuid.UUID | None,
    vetter_id: uuid.UUID,
    blocked: Sequence[str],
    step: Literal["sign_off", "approve"],
) -> None:
    """What signing off and approving share: a draft, not its author, nothing blocking."""
    if state != "drafted":
        raise VettingError("vetting.not_a_draft", f"the current version is {state}")
    if author_id is not None and author_id == vetter_id:
        verb = "sign it off" if step == "sign_off" else "approve it"
        raise VettingError(
            f"vetting.author_cannot_{step}",
            f"the author of a draft cannot {verb}; ask another vetter",
            forbidden=True,
        )
    if blocked:
        raise VettingError("vetting.blocked", "guardrails block this draft: " + ", ".join(blocked))


def check_sign_off(
    *, state: str, author_id: uuid.UUID | None, vetter_id: uuid.UUID, blocked: Sequence[str]
) -> None:
    """A vetter other than the author signs off a draft no guardrail blocks."""
    _check_vetter(
        state=state, author_id=author_id, vetter_id=vetter_id, blocked=blocked, step="sign_off"
    )


def missing_signoffs(signed: Iterable[str]) -> tuple[Language, ...]:
    """Languages not yet signed off."""
    done = set(signed)
    return tuple(language for language in LANGUAGES if language not in done)


def check_approval(
    *,
    state: str,
    author_id: uuid.UUID | None,
    vetter_id: uuid.UUID,
    blocked: Sequence[str],
    signed: Iterable[str],
) -> None:
    """drafted -> approved only by a non-author, with no guardrail blocking and every
    language signed off."""
    _check_vetter(
        state=state, author_id=author_id, vetter_id=vetter_id, blocked=blocked, step="approve"
    )
    missing = missing_signoffs(signed)
    if missing:
        raise VettingError(
            "vetting.signoff_missing", "each language needs a sign-off: " + ", ".join(missing)
        )

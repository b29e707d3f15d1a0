"""Bulletin transitions: each step decides the new rows, its timeline entries and its events.

A bulletin: drafted -> published (approve) | rejected (reject, in `publication`); once
published it is updated by a new drafted version (edit: CAP Update) or retracted by a
Cancel version that is published at once (`publication.retract`). A rumor (or a notice's
standby) has one chain of messages: a new bulletin that replaces the live one is its CAP
Update, referencing every earlier message of the chain (`lifecycle`). The functions are
pure: a use case gathers what they need (guardrail findings, rendered texts) and applies
what they return with one repository call, `uow.bulletins.apply(transition)`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypedDict

from schemas.base import EventData, Language, MsgType, Status, parse_version_ref, version_ref
from schemas.bulletins import (
    BulletinApproved,
    BulletinDrafted,
    BulletinKind,
    BulletinPublished,
    BulletinText,
    LanguageSignoff,
)
from services.rumor_control.domain.records import BulletinRow, Texts, VersionRow
from services.rumor_control.domain.rules import (
    LANGUAGES,
    Actor,
    VettingError,
    channels_for,
    check_approval,
    check_editable,
    check_sign_off,
)
from services.rumor_control.domain.timeline import TimelineAction, TimelineRecord

__all__ = [
    "BulletinTransition",
    "BulletinView",
    "Checked",
    "approve",
    "draft",
    "drafted_event",
    "edit",
    "edit_base",
    "event_header",
    "is_untouched_draft",
    "recheck",
    "redraft",
    "sign_off",
    "timeline_step",
]


@dataclass(frozen=True)
class BulletinView:
    """A bulletin with every version (the latest last)."""

    bulletin: BulletinRow
    versions: tuple[VersionRow, ...]

    @property
    def latest(self) -> VersionRow:
        """The newest version (a draft, a published version or a retraction)."""
        return self.versions[-1]

    @property
    def last_published(self) -> VersionRow | None:
        """The newest published version in force; None once another bulletin of the same
        rumor superseded this one (its deliveries not yet sent are skipped)."""
        if self.bulletin.state == "superseded":
            return None
        published = [v for v in self.versions if v.state == "published"]
        return published[-1] if published else None

    def published_versions(self) -> list[int]:
        """Numbers of every published version."""
        return [v.version for v in self.versions if v.state == "published"]

    def chain_references(self) -> tuple[str, ...]:
        """CAP references of the next message in this bulletin's chain: the earlier
        bulletins' messages it inherited (oldest first), then its own published versions."""
        own = self.bulletin.bulletin_id
        found: list[str] = []
        for version in self.versions:
            if version.state != "published":
                continue
            for ref in version.references:
                if parse_version_ref(ref)[0] != own and ref not in found:
                    found.append(ref)
        found += [version_ref(own, v) for v in self.published_versions()]
        return tuple(found)


@dataclass(frozen=True)
class Checked:
    """The guardrails' verdict on a text: every finding, and the codes that block approval."""

    findings: tuple[Mapping[str, Any], ...]
    blocked: tuple[str, ...]


@dataclass(frozen=True)
class BulletinTransition:
    """One step of a bulletin, applied at once: rows, timeline entries and outgoing events."""

    bulletin_id: uuid.UUID
    bulletin: BulletinRow | None = None  # the bulletin row after the step; None: unchanged
    created: bool = False  # the row (and version 1) are new
    inserted: tuple[VersionRow, ...] = ()
    updated: tuple[VersionRow, ...] = ()
    timeline: tuple[TimelineRecord, ...] = ()
    events: tuple[EventData, ...] = ()
    blocked: tuple[str, ...] = ()  # guardrail codes the step left blocking (for metrics)


class _Header(TypedDict):
    bulletin_id: uuid.UUID
    version: int
    msg_type: MsgType
    references: tuple[str, ...]
    status: Status
    kind: BulletinKind
    rumor_id: uuid.UUID | None
    notice_ids: tuple[uuid.UUID, ...]


def event_header(bulletin: BulletinRow, version: VersionRow) -> _Header:
    """The fields every bulletin event carries."""
    return _Header(
        bulletin_id=bulletin.bulletin_id,
        version=version.version,
        msg_type=version.msg_type,
        references=version.references,
        status=bulletin.status,
        kind=bulletin.kind,
        rumor_id=bulletin.rumor_id,
        notice_ids=bulletin.notice_ids,
    )


def drafted_event(
    bulletin: BulletinRow, version: VersionRow, author: uuid.UUID | None, at: datetime
) -> BulletinDrafted:
    return BulletinDrafted(
        **event_header(bulletin, version),
        languages=LANGUAGES,
        template_id=bulletin.template_id,
        author_id=author,
        blocked_reasons=version.blocked_reasons,
        drafted_at=at,
    )


def timeline_step(
    bulletin: BulletinRow,
    version: int | None,
    action: TimelineAction,
    actor: Actor | None,
    at: datetime,
    **detail: Any,
) -> TimelineRecord:
    return TimelineRecord("bulletin", bulletin.bulletin_id, action, actor, at, version, detail)


def draft(
    *,
    bulletin_id: uuid.UUID,
    kind: BulletinKind,
    template_id: str,
    status: Status,
    texts: Texts,
    checked: Checked,
    notice_ids: Sequence[uuid.UUID],
    rumor_id: uuid.UUID | None,
    area_code: str | None,
    standby_for_notice: uuid.UUID | None,
    first_reported_at: datetime | None,
    author: Actor | None,
    at: datetime,
    references: tuple[str, ...] = (),
) -> BulletinTransition:
    """A new bulletin whose version 1 is drafted from a template: an Alert, or the Update of
    the live bulletin it will replace (`references`: that bulletin's chain)."""
    bulletin = BulletinRow(
        bulletin_id, kind, status, "drafted", 1, template_id, rumor_id,
        tuple(sorted(set(notice_ids))), area_code, first_reported_at, at, at, standby_for_notice,
    )  # fmt: skip
    version = VersionRow(
        bulletin_id, 1, "Update" if references else "Alert", references, "drafted", 1, texts,
        checked.findings, checked.blocked,
        channels_for(status), {}, None if author is None else author.id,
        None if author is None else author.name, at,
    )  # fmt: skip
    detail = {"template_id": template_id, "kind": kind, "blocked_reasons": list(checked.blocked)}
    return BulletinTransition(
        bulletin_id,
        bulletin=bulletin,
        created=True,
        inserted=(version,),
        timeline=(timeline_step(bulletin, 1, "drafted", author, at, **detail),),
        events=(drafted_event(bulletin, version, None if author is None else author.id, at),),
        blocked=checked.blocked,
    )


def is_untouched_draft(version: VersionRow) -> bool:
    """A draft nobody has edited or signed: still the template's, so it may be redrafted."""
    return version.state == "drafted" and version.author_id is None and not version.signoffs


def redraft(
    view: BulletinView,
    *,
    texts: Texts,
    checked: Checked,
    area_code: str | None,
    notice_id: uuid.UUID,
    notice_version: int,
    at: datetime,
) -> BulletinTransition:
    """An untouched standby drafted again from its notice's newest version."""
    latest = view.latest
    if not is_untouched_draft(latest):
        raise VettingError("vetting.not_editable", "only an untouched draft is redrafted")
    version = replace(
        latest, texts=texts, findings=checked.findings, blocked_reasons=checked.blocked,
        revision=latest.revision + 1, drafted_at=at,
    )  # fmt: skip
    bulletin = replace(view.bulletin, area_code=area_code, updated_at=at)
    detail = {"notice_id": str(notice_id), "notice_version": notice_version}
    return BulletinTransition(
        bulletin.bulletin_id,
        bulletin=bulletin,
        updated=(version,),
        timeline=(timeline_step(bulletin, version.version, "redrafted", None, at, **detail),),
        events=(drafted_event(bulletin, version, None, at),),
        blocked=checked.blocked,
    )


def recheck(
    view: BulletinView, *, checked: Checked, notice_id: uuid.UUID, at: datetime
) -> BulletinTransition | None:
    """A draft whose notice changed: new findings; sign-offs start over if the verdict moved."""
    latest = view.latest
    if latest.state != "drafted" or checked.blocked == latest.blocked_reasons:
        return None
    version = replace(
        latest, findings=checked.findings, blocked_reasons=checked.blocked, signoffs={}
    )
    detail = {"notice_id": str(notice_id), "blocked_reasons": list(checked.blocked)}
    return BulletinTransition(
        view.bulletin.bulletin_id,
        updated=(version,),
        timeline=(
            timeline_step(
                view.bulletin, version.version, "guardrails_rechecked", None, at, **detail
            ),
        ),
        blocked=checked.blocked,
    )


def edit_base(view: BulletinView) -> VersionRow:
    """The version an edit starts from: the draft itself, or the last published version."""
    check_editable(view.bulletin.state)
    base = view.latest if view.latest.state == "drafted" else view.last_published
    if base is None or base.msg_type == "Cancel":
        raise VettingError("vetting.not_editable", "nothing editable in this bulletin")
    return base


def edit(
    view: BulletinView,
    *,
    actor: Actor,
    language: Language,
    changes: Mapping[str, str],
    texts: Texts,
    checked: Checked,
    at: datetime,
) -> BulletinTransition:
    """A draft edited in place (a new revision, the editor its author) or, for a published
    bulletin, a new drafted version: its CAP Update."""
    base = edit_base(view)
    latest, bulletin = view.latest, view.bulletin
    changed: BulletinRow | None = None
    inserted: tuple[VersionRow, ...] = ()
    updated: tuple[VersionRow, ...] = ()
    if latest.state == "drafted":
        version = replace(
            latest, texts=texts, findings=checked.findings, blocked_reasons=checked.blocked,
            revision=latest.revision + 1, signoffs={}, author_id=actor.id,
            author_name=actor.name, drafted_at=at,
        )  # fmt: skip
        updated = (version,)
    else:
        # published -> a new version drafted as its Update
        version = VersionRow(
            bulletin.bulletin_id, latest.version + 1, "Update", view.chain_references(),
            "drafted", 1, texts, checked.findings, checked.blocked, base.channels, {}, actor.id,
            actor.name, at,
        )  # fmt: skip
        changed = replace(bulletin, current_version=version.version, updated_at=at)
        inserted = (version,)
    detail = {
        "language": language,
        "sections": sorted(changes),
        "blocked_reasons": list(checked.blocked),
    }
    return BulletinTransition(
        bulletin.bulletin_id,
        bulletin=changed,
        inserted=inserted,
        updated=updated,
        timeline=(timeline_step(bulletin, version.version, "edited", actor, at, **detail),),
        events=(drafted_event(bulletin, version, actor.id, at),),
        blocked=checked.blocked,
    )


def _refreshed(latest: VersionRow, checked: Checked) -> VersionRow:
    """The version with the guardrails' fresh verdict (a notice update may add terms)."""
    if checked.blocked == latest.blocked_reasons:
        return latest
    return replace(latest, findings=checked.findings, blocked_reasons=checked.blocked)


def _signed(
    latest: VersionRow, actor: Actor, languages: Sequence[Language], at: datetime
) -> dict[str, Mapping[str, Any]]:
    if latest.state == "withdrawn":
        # A newer assessment or a cancelled notice made it untrue: never signed or approved.
        raise VettingError(
            "vetting.withdrawn", "this draft was withdrawn and can no longer be approved"
        )
    signoffs: dict[str, Mapping[str, Any]] = {k: dict(v) for k, v in latest.signoffs.items()}
    for language in languages:
        check_sign_off(
            state=latest.state,
            author_id=latest.author_id,
            vetter_id=actor.id,
            blocked=latest.blocked_reasons,
        )
        signoffs[language] = {
            "by": str(actor.id),
            "name": actor.name,
            "at": at.isoformat(),
            "revision": latest.revision,
        }
    return signoffs


def _signoff_steps(
    view: BulletinView, actor: Actor, languages: Sequence[Language], at: datetime
) -> tuple[TimelineRecord, ...]:
    latest = view.latest
    return tuple(
        timeline_step(view.bulletin, latest.version, "signed_off", actor, at, language=language,
              revision=latest.revision)
        for language in languages
    )  # fmt: skip


def sign_off(
    view: BulletinView,
    *,
    actor: Actor,
    languages: Sequence[Language],
    checked: Checked,
    at: datetime,
) -> BulletinTransition:
    """A vetter (not the author) signs off language versions of a draft no guardrail blocks."""
    latest = _refreshed(view.latest, checked)
    version = replace(latest, signoffs=_signed(latest, actor, languages, at))
    return BulletinTransition(
        view.bulletin.bulletin_id,
        updated=(version,),
        timeline=_signoff_steps(view, actor, languages, at),
    )


def _approval_events(
    bulletin: BulletinRow,
    version: VersionRow,
    *,
    actor: Actor,
    area_name: str | None,
    at: datetime,
) -> tuple[BulletinApproved, BulletinPublished]:
    """bulletin.approved (who signed what) and bulletin.published (the releasable text)."""
    header = event_header(bulletin, version)
    approved = BulletinApproved(
        **header,
        languages=LANGUAGES,
        signoffs=tuple(
            LanguageSignoff(
                language=language,
                signed_off_by=uuid.UUID(value["by"]),
                signed_off_at=datetime.fromisoformat(value["at"]),
            )
            for language, value in sorted(version.signoffs.items())
        ),
        author_id=version.author_id,
        approved_by=actor.id,
        approved_at=at,
    )
    published = BulletinPublished(
        **header,
        texts=tuple(
            BulletinText(
                language=lang,
                headline=version.texts[lang]["headline"],
                body=version.texts[lang]["body"],
            )
            for lang in LANGUAGES
            if lang in version.texts
        ),
        channels=version.channels,
        area_code=bulletin.area_code,
        area=area_name,
        approved_by=actor.id,
        published_at=at,
        expires_at=version.expires_at,
    )
    return approved, published


def approve(
    view: BulletinView,
    *,
    actor: Actor,
    sign_off_languages: Sequence[Language],
    checked: Checked,
    expires_at: datetime | None,
    area_name: str | None,
    deliveries_requested: int,
    at: datetime,
    supersedes: BulletinView | None = None,
) -> BulletinTransition:
    """drafted -> approved -> published: both events and the feeds (the use case hands the
    deliveries to the delivery engine in the same transaction). With `supersedes` (the
    live bulletin of the same rumor) the version is that chain's Update."""
    latest = _refreshed(view.latest, checked)
    if supersedes is not None:
        latest = replace(latest, msg_type="Update", references=supersedes.chain_references())
    signoffs = _signed(latest, actor, sign_off_languages, at)
    check_approval(
        state=latest.state,
        author_id=latest.author_id,
        vetter_id=actor.id,
        blocked=latest.blocked_reasons,
        signed=signoffs,
    )
    version = replace(
        latest, state="published", signoffs=signoffs, approved_by=actor.id, approved_at=at,
        published_at=at, expires_at=expires_at if expires_at and expires_at > at else None,
    )  # fmt: skip
    bulletin = replace(view.bulletin, state="published", flags=(), updated_at=at)
    approved, published = _approval_events(
        bulletin, version, actor=actor, area_name=area_name, at=at
    )
    steps = (
        *_signoff_steps(view, actor, sign_off_languages, at),
        timeline_step(bulletin, version.version, "approved", actor, at,
              signoffs={lang: v["by"] for lang, v in signoffs.items()}),
        timeline_step(bulletin, version.version, "published", actor, at,
              channels=list(version.channels), deliveries_requested=deliveries_requested),
    )  # fmt: skip
    return BulletinTransition(
        bulletin.bulletin_id,
        bulletin=bulletin,
        updated=(version,),
        timeline=steps,
        events=(approved, published),
    )

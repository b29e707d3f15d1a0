"""`/v1/bulletins`: read, edit, sign off, approve, reject and retract bulletins; the radio
desk's script. Models and routes; what each role sees comes from `permissions`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field, StringConstraints

from schemas.base import Language, ReasonCode, Status, is_drill
from services.rumor_control import publishing, vetting
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import BulletinRow, VersionRow
from services.rumor_control.domain.bulletins import BulletinView
from services.rumor_control.guardrails import Sections
from services.rumor_control.http.common import (
    BulletinId,
    BulletinReader,
    In,
    LedgerReader,
    TimelineEntry,
    Vetter,
    actor_of,
    no_such_thing,
    problems,
)
from services.rumor_control.permissions import (
    TextView,
    bulletin_texts,
    lists_drills,
    may_read,
    visible_bulletin_states,
)
from services.rumor_control.rumors import timeline

__all__ = ["BulletinDetail", "BulletinSummary", "bulletin_detail", "bulletin_summary", "routes"]

_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class FindingOut(BaseModel):
    """A guardrail finding, shown to the vetter."""

    code: str
    language: str | None
    section: str | None
    detail: str


class SectionsOut(BaseModel):
    """One language version."""

    headline: str
    body: str
    sms: str
    radio: str


class SignoffOut(BaseModel):
    """Who signed a language off."""

    language: str
    by: uuid.UUID
    name: str
    at: datetime


class VersionOut(BaseModel):
    """One version's metadata."""

    version: int
    msg_type: str
    state: str
    revision: int
    references: list[str]
    blocked_reasons: list[str]
    author_id: uuid.UUID | None
    drafted_at: datetime
    approved_by: uuid.UUID | None
    published_at: datetime | None
    rejected_by: uuid.UUID | None
    reason_codes: list[str]

    @classmethod
    def of(cls, v: VersionRow) -> VersionOut:
        """From a version row."""
        return cls(
            version=v.version,
            msg_type=v.msg_type,
            state=v.state,
            revision=v.revision,
            references=list(v.references),
            blocked_reasons=list(v.blocked_reasons),
            author_id=v.author_id,
            drafted_at=v.drafted_at,
            approved_by=v.approved_by,
            published_at=v.published_at,
            rejected_by=v.rejected_by,
            reason_codes=list(v.reason_codes),
        )


class BulletinSummary(BaseModel):
    """A bulletin as listed."""

    bulletin_id: uuid.UUID
    kind: str
    status: Status
    drill: bool
    state: str = Field(
        description="drafted, rejected, published, superseded (a newer bulletin of the same "
        "rumor replaced it: see superseded_by), retracted, or withdrawn (a draft that can no "
        "longer be approved)."
    )
    version: int
    version_state: str = Field(description="The latest version's own state.")
    msg_type: str
    area_code: str | None
    rumor_id: uuid.UUID | None
    notice_ids: list[uuid.UUID]
    superseded_by: uuid.UUID | None = Field(
        default=None, description="The bulletin that replaced this one (state superseded)."
    )
    flags: list[str] = Field(
        default_factory=list,
        description="Why vetters should look at it again (e.g. notice.cancelled: a suggested "
        "correction is drafted as its next version).",
    )
    blocked_reasons: list[str]
    signed_off: list[str]
    author_id: uuid.UUID | None
    author_name: str | None
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None


def bulletin_summary(bulletin: BulletinRow, latest: VersionRow) -> BulletinSummary:
    """Metadata only: no text."""
    return BulletinSummary(
        bulletin_id=bulletin.bulletin_id,
        kind=bulletin.kind,
        status=bulletin.status,
        drill=is_drill(bulletin.status),
        state=bulletin.state,
        version=latest.version,
        version_state=latest.state,
        msg_type=latest.msg_type,
        area_code=bulletin.area_code,
        rumor_id=bulletin.rumor_id,
        notice_ids=list(bulletin.notice_ids),
        superseded_by=bulletin.superseded_by,
        flags=list(bulletin.flags),
        blocked_reasons=list(latest.blocked_reasons),
        signed_off=sorted(latest.signoffs),
        author_id=latest.author_id,
        author_name=latest.author_name,
        created_at=bulletin.created_at,
        updated_at=bulletin.updated_at,
        published_at=latest.published_at,
    )


class BulletinDetail(BulletinSummary):
    """A bulletin with its texts (per role), guardrail findings and versions."""

    texts: dict[str, SectionsOut] | None = Field(
        default=None,
        description="Vetters: the latest version. Liaisons: the latest published version. "
        "Ops: none.",
    )
    guardrails: list[FindingOut] = Field(default_factory=list)
    signoffs: list[SignoffOut] = Field(default_factory=list)
    versions: list[VersionOut] = Field(default_factory=list)


def _texts(version: VersionRow) -> dict[str, SectionsOut]:
    return {lang: SectionsOut(**sections) for lang, sections in version.texts.items()}


def bulletin_detail(view: BulletinView, *, texts: TextView) -> BulletinDetail:
    """`texts`: "draft" (vetters), "published" (liaisons) or "none" (ops)."""
    latest = view.latest
    shown: dict[str, SectionsOut] | None = None
    if texts == "draft":
        shown = _texts(latest)
    elif texts == "published" and view.last_published is not None:
        shown = _texts(view.last_published)
    return BulletinDetail(
        **bulletin_summary(view.bulletin, latest).model_dump(),
        texts=shown,
        guardrails=[FindingOut(**f) for f in latest.findings] if texts == "draft" else [],
        signoffs=[
            SignoffOut(language=lang, by=v["by"], name=v["name"], at=v["at"])
            for lang, v in sorted(latest.signoffs.items())
        ],
        versions=[VersionOut.of(v) for v in view.versions],
    )


class EditIn(In):
    """New text for sections of one language (omitted sections stay as they are)."""

    headline: Annotated[_Text, StringConstraints(max_length=200)] | None = None
    body: Annotated[_Text, StringConstraints(max_length=10_000)] | None = None
    sms: Annotated[_Text, StringConstraints(max_length=1000)] | None = None
    radio: Annotated[_Text, StringConstraints(max_length=10_000)] | None = None

    def changes(self) -> dict[str, str]:
        """Only the sections given."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class SignOffIn(In):
    """Languages the vetter signs off."""

    languages: list[Language] = Field(min_length=1)


class ApproveIn(In):
    """Approve, optionally signing off languages in the same step."""

    sign_off: list[Language] = Field(default_factory=list)


class RejectIn(In):
    """Why a draft is rejected (codes go on the event; the comment stays here)."""

    reason_codes: list[ReasonCode] = Field(min_length=1)
    comment: Annotated[str, StringConstraints(max_length=2000)] | None = None


class RetractIn(In):
    """Why a published bulletin is withdrawn."""

    reason_code: ReasonCode


def routes(deps: RumorControlDeps) -> APIRouter:
    """`/v1/bulletins` and its sub-resources."""
    router = APIRouter(prefix="/v1", tags=["rumor control"])
    _reading(router, deps)
    _drafting(router, deps)
    _deciding(router, deps)
    return router


def _reading(router: APIRouter, deps: RumorControlDeps) -> None:
    @router.get(
        "/bulletins",
        summary="Bulletins (liaisons see published, current, real ones only: no drafts, "
        "superseded, retracted or withdrawn bulletins, no drills)",
    )
    async def list_bulletins(principal: BulletinReader) -> list[BulletinSummary]:
        states = visible_bulletin_states(principal.role)
        async with deps.unit_of_work() as uow:
            rows = await vetting.list_bulletins(
                uow, states=states, drills=lists_drills(principal.role)
            )
        return [bulletin_summary(bulletin, latest) for bulletin, latest in rows]

    @router.get("/bulletins/{bulletin_id}", summary="A bulletin: both languages and guardrails")
    async def get_bulletin(principal: BulletinReader, bulletin_id: BulletinId) -> BulletinDetail:
        with problems():
            async with deps.unit_of_work() as uow:
                view = await vetting.get_bulletin(uow, bulletin_id=bulletin_id)
        if not may_read(principal.role, view.bulletin):
            raise no_such_thing()
        return bulletin_detail(view, texts=bulletin_texts(principal.role))

    @router.get("/bulletins/{bulletin_id}/timeline", summary="Every step of a bulletin")
    async def bulletin_timeline(
        principal: LedgerReader, bulletin_id: BulletinId
    ) -> list[TimelineEntry]:
        with problems():
            async with deps.unit_of_work() as uow:
                entries = await timeline(uow, aggregate="bulletin", aggregate_id=bulletin_id)
        return [TimelineEntry.of(entry) for entry in entries]

    @router.get(
        "/bulletins/{bulletin_id}/radio",
        summary="The radio desk's read-aloud script (Spanish first)",
        response_class=PlainTextResponse,
    )
    async def radio_script(principal: BulletinReader, bulletin_id: BulletinId) -> PlainTextResponse:
        with problems():
            async with deps.unit_of_work() as uow:
                view = await vetting.get_bulletin(uow, bulletin_id=bulletin_id)
        if not may_read(principal.role, view.bulletin):
            raise no_such_thing()
        shown = bulletin_texts(principal.role)
        version = {"draft": view.latest, "published": view.last_published}.get(shown)
        if version is None:
            raise no_such_thing()
        _headline, script = publishing.radio_delivery_text(
            spanish=Sections(**version.texts["es"]),
            english=Sections(**version.texts["en"]),
            drill=is_drill(view.bulletin.status),
            words_per_minute=deps.settings.rumor_radio_words_per_minute,
            bulletin_ref=f"{bulletin_id} v{version.version}",
        )
        return PlainTextResponse(script)


def _drafting(router: APIRouter, deps: RumorControlDeps) -> None:
    @router.put(
        "/bulletins/{bulletin_id}/texts/{language}",
        summary="Edit one language; the guardrails run again and sign-offs start over",
    )
    async def edit_bulletin(
        principal: Vetter, bulletin_id: BulletinId, language: Language, body: EditIn
    ) -> BulletinDetail:
        with problems():
            async with deps.unit_of_work() as uow:
                view = await vetting.edit_bulletin(
                    uow, deps=deps, actor=actor_of(principal), bulletin_id=bulletin_id,
                    language=language, changes=body.changes(),
                )  # fmt: skip
                await uow.commit()
        return bulletin_detail(view, texts="draft")

    @router.post("/bulletins/{bulletin_id}/signoff", summary="Sign off language versions")
    async def sign_off(
        principal: Vetter, bulletin_id: BulletinId, body: SignOffIn
    ) -> BulletinDetail:
        with problems():
            async with deps.unit_of_work() as uow:
                view = await vetting.sign_off(
                    uow, deps=deps, actor=actor_of(principal), bulletin_id=bulletin_id,
                    languages=body.languages,
                )  # fmt: skip
                await uow.commit()
        return bulletin_detail(view, texts="draft")


def _deciding(router: APIRouter, deps: RumorControlDeps) -> None:
    @router.post(
        "/bulletins/{bulletin_id}/approve",
        summary="Approve (not the author; every language signed off) and publish",
        responses={
            403: {"description": "The author may not approve"},
            409: {"description": "Blocked or not signed off"},
        },
    )
    async def approve(
        principal: Vetter, bulletin_id: BulletinId, body: Annotated[ApproveIn | None, Body()] = None
    ) -> BulletinDetail:
        with problems():
            async with deps.unit_of_work() as uow:
                view = await vetting.approve(
                    uow, deps=deps, actor=actor_of(principal), bulletin_id=bulletin_id,
                    sign_off_languages=(body.sign_off if body else []),
                )  # fmt: skip
                await uow.commit()
        return bulletin_detail(view, texts="draft")

    @router.post("/bulletins/{bulletin_id}/reject", summary="Reject a draft with reason codes")
    async def reject(principal: Vetter, bulletin_id: BulletinId, body: RejectIn) -> BulletinDetail:
        with problems():
            async with deps.unit_of_work() as uow:
                view = await vetting.reject(
                    uow, deps=deps, actor=actor_of(principal), bulletin_id=bulletin_id,
                    reason_codes=body.reason_codes, comment=body.comment,
                )  # fmt: skip
                await uow.commit()
        return bulletin_detail(view, texts="draft")

    @router.post(
        "/bulletins/{bulletin_id}/retract", summary="Withdraw a published bulletin (CAP Cancel)"
    )
    async def retract(
        principal: Vetter, bulletin_id: BulletinId, body: RetractIn
    ) -> BulletinDetail:
        with problems():
            async with deps.unit_of_work() as uow:
                view = await publishing.retract(
                    uow, deps=deps, actor=actor_of(principal), bulletin_id=bulletin_id,
                    reason_code=body.reason_code,
                )  # fmt: skip
                await uow.commit()
        return bulletin_detail(view, texts="draft")

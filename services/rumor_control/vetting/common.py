"""Steps the bulletin use cases share: load a bulletin, run the guardrails, count blocks."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from schemas.base import Language, Status
from services.common.logging import get_logger
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import LANGUAGES, NotFound, Texts
from services.rumor_control.domain.bulletins import BulletinTransition, BulletinView, Checked
from services.rumor_control.guardrails import Sections, blocked_reasons, run_all
from services.rumor_control.metrics import GUARDRAIL_BLOCKS, LEAK_HITS
from services.rumor_control.unit_of_work import RumorControlUoW

__all__ = [
    "apply_bulletin",
    "area_variables",
    "check_texts",
    "load_bulletin",
    "sections_of",
    "texts_json",
]

log = get_logger(__name__)

# Rumors about an operation outlive it by days; so does the duty not to name its target.
LIVE_HORIZON = timedelta(days=7)


async def load_bulletin(
    uow: RumorControlUoW, bulletin_id: uuid.UUID, *, for_update: bool = False
) -> BulletinView:
    """A bulletin with its versions, or NotFound."""
    view = await uow.bulletins.view(bulletin_id, for_update=for_update)
    if view is None:
        raise NotFound(str(bulletin_id))
    return view


def texts_json(texts: Mapping[Language, Sections]) -> dict[str, dict[str, str]]:
    """Rendered sections as stored on a version."""
    return {
        lang: {"headline": t.headline, "body": t.body, "sms": t.sms, "radio": t.radio}
        for lang, t in texts.items()
    }


def sections_of(texts: Texts) -> dict[Language, Sections]:
    """A version's stored texts as the guardrails read them (English, then Spanish)."""
    return {
        lang: Sections(
            texts[lang]["headline"], texts[lang]["body"], texts[lang]["sms"], texts[lang]["radio"]
        )
        for lang in LANGUAGES
        if lang in texts
    }


def area_variables(
    deps: RumorControlDeps, area_code: str | None, fallback: str | None
) -> dict[Language, dict[str, Any]]:
    """The area's name in each language (the gazetteer's, or `fallback` as given)."""
    area = deps.gazetteer.get(area_code)
    return {
        lang: {
            "area": area.name(lang) if area else fallback,
            "area_ref": area.reference(lang) if area else fallback,
        }
        for lang in LANGUAGES
    }


async def check_texts(
    uow: RumorControlUoW,
    *,
    deps: RumorControlDeps,
    texts: Texts,
    status: Status,
    channels: Sequence[str],
    notice_ids: Iterable[uuid.UUID],
) -> Checked:
    """Run every guardrail against the fingerprints of every live notice.

    Not only the notices the texts draw on: a draft about the same street that is linked to
    no notice (a rumor assessed "Unable to verify") must not name a live notice's target.
    Live: linked, or with a window that ended less than LIVE_HORIZON ago (cancelled too).
    """
    fingerprints, key_ids = await uow.notices.fingerprints_of(notice_ids)
    for notice in await uow.notices.recent(since=deps.clock() - LIVE_HORIZON):
        fingerprints |= notice.fingerprints
        key_ids |= notice.key_ids
    findings = run_all(
        sections_of(texts),
        status=status,
        channels=channels,
        context=deps.guardrails(fingerprints, key_ids),
    )
    leaks = [f for f in findings if f.code == "leak.restricted_term"]
    hits = len(leaks)
    if hits:
        # Counted and logged (the audit of who typed what is the bulletin's timeline); the
        # log line holds neither the span nor the notice, only that and where it happened.
        sections = sorted({f"{f.language}.{f.section}" for f in leaks})

        def record_hits() -> None:
            LEAK_HITS.inc(hits)
            log.warning("guardrail.leak_blocked", hits=hits, sections=sections)

        uow.after_commit(record_hits)
    return Checked(tuple(f.as_dict() for f in findings), blocked_reasons(findings))


async def apply_bulletin(uow: RumorControlUoW, transition: BulletinTransition) -> None:
    """Apply a bulletin step; once committed, count what the guardrails block."""
    await uow.bulletins.apply(transition)
    blocked, bulletin_id = transition.blocked, transition.bulletin_id

    def count_blocks() -> None:
        for reason in blocked:
            GUARDRAIL_BLOCKS.labels(reason).inc()
        if blocked:
            log.info("bulletin.blocked", bulletin_id=str(bulletin_id), reasons=list(blocked))

    uow.after_commit(count_blocks)

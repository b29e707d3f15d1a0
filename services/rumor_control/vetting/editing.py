"""Vetters work on a draft: edit a language (the guardrails run again) and sign it off."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from schemas.base import Language
from services.common.logging import get_logger
from services.common.text import clean_line, clean_prose
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import Actor, InvalidInput
from services.rumor_control.domain import bulletins as transitions
from services.rumor_control.domain.bulletins import BulletinView
from services.rumor_control.unit_of_work import RumorControlUoW
from services.rumor_control.vetting.common import apply_bulletin, check_texts, load_bulletin

__all__ = ["edit_bulletin", "sign_off"]

log = get_logger(__name__)

# The headline is one line (feed titles, e-mail subjects); the other sections are prose.
_SINGLE_LINE_SECTIONS = frozenset({"headline"})


def _clean_changes(changes: Mapping[str, str]) -> dict[str, str]:
    """Edited sections NFC-normalised; control and XML-invalid characters refused.

    A bulletin's text goes to Atom and CAP feeds, e-mail, SMS and webhooks: a NUL, an ESC or
    U+FFFE would make the feeds ill-formed XML, so it is refused here, before any version
    is written. The refusal names the section and the kind of character, never the text.
    """
    cleaned: dict[str, str] = {}
    for section, text in changes.items():
        clean = clean_line if section in _SINGLE_LINE_SECTIONS else clean_prose
        try:
            cleaned[section] = clean(text)
        except ValueError as exc:
            raise InvalidInput("invalid_text", f"The {section}: {exc}.") from None
    return cleaned


async def edit_bulletin(
    uow: RumorControlUoW,
    *,
    deps: RumorControlDeps,
    actor: Actor,
    bulletin_id: uuid.UUID,
    language: Language,
    changes: Mapping[str, str],
) -> BulletinView:
    """A vetter edits one language: the guardrails run again and sign-offs start over.

    A draft is edited in place (a new revision; the editor becomes its author, so someone
    else must approve). A published bulletin gets a new draft version, a CAP Update.
    """
    changes = _clean_changes(changes)
    view = await load_bulletin(uow, bulletin_id, for_update=True)
    base = transitions.edit_base(view)
    texts = {lang: dict(sections) for lang, sections in base.texts.items()}
    texts[language].update(changes)
    checked = await check_texts(
        uow, deps=deps, texts=texts, status=view.bulletin.status, channels=base.channels,
        notice_ids=view.bulletin.notice_ids,
    )  # fmt: skip
    transition = transitions.edit(
        view, actor=actor, language=language, changes=changes, texts=texts, checked=checked,
        at=deps.clock(),
    )  # fmt: skip
    await apply_bulletin(uow, transition)
    version, blocked = transition.timeline[0].version, list(checked.blocked)
    uow.after_commit(
        lambda: log.info(
            "bulletin.edited",
            bulletin_id=str(bulletin_id),
            version=version,
            language=language,
            blocked_reasons=blocked,
        )
    )
    return await load_bulletin(uow, bulletin_id)


async def sign_off(
    uow: RumorControlUoW,
    *,
    deps: RumorControlDeps,
    actor: Actor,
    bulletin_id: uuid.UUID,
    languages: Sequence[Language],
) -> BulletinView:
    """A vetter (not the author) signs off language versions of a draft no guardrail blocks."""
    view = await load_bulletin(uow, bulletin_id, for_update=True)
    checked = await fresh_check(uow, deps=deps, view=view)
    transition = transitions.sign_off(
        view, actor=actor, languages=languages, checked=checked, at=deps.clock()
    )
    await apply_bulletin(uow, transition)
    signed = list(languages)
    uow.after_commit(
        lambda: log.info("bulletin.signed_off", bulletin_id=str(bulletin_id), languages=signed)
    )
    return await load_bulletin(uow, bulletin_id)


async def fresh_check(
    uow: RumorControlUoW, *, deps: RumorControlDeps, view: BulletinView
) -> transitions.Checked:
    """Every guardrail again on the latest version: a notice update may have added terms."""
    return await check_texts(
        uow, deps=deps, texts=view.latest.texts, status=view.bulletin.status,
        channels=view.latest.channels, notice_ids=view.bulletin.notice_ids,
    )  # fmt: skip

"""Bulletins and their versions; a transition is applied with its timeline and events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.outbox import enqueue
from services.rumor_control.domain import BulletinRow, BulletinState, VersionRow
from services.rumor_control.domain.bulletins import BulletinTransition, BulletinView
from services.rumor_control.repository._sql import aware, uuid_or_none, when
from services.rumor_control.repository.timeline import record_all
from services.rumor_control.tables import bulletin_versions, bulletins

__all__ = ["SqlBulletins"]


def _id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _bulletin(row: Any) -> BulletinRow:
    return BulletinRow(
        bulletin_id=uuid.UUID(row.bulletin_id),
        kind=row.kind,
        status=row.status,
        state=row.state,
        current_version=row.current_version,
        template_id=row.template_id,
        rumor_id=uuid_or_none(row.rumor_id),
        notice_ids=tuple(uuid.UUID(i) for i in row.notice_ids or ()),
        area_code=row.area_code,
        first_reported_at=aware(row.first_reported_at),
        created_at=when(row.created_at),
        updated_at=when(row.updated_at),
        standby_for_notice=uuid_or_none(row.standby_for_notice),
        superseded_by=uuid_or_none(row.superseded_by),
        flags=tuple(row.flags or ()),
    )


def _bulletin_columns(bulletin: BulletinRow) -> dict[str, Any]:
    return {
        "kind": bulletin.kind,
        "status": bulletin.status,
        "state": bulletin.state,
        "current_version": bulletin.current_version,
        "template_id": bulletin.template_id,
        "rumor_id": _id(bulletin.rumor_id),
        "notice_ids": [str(i) for i in bulletin.notice_ids],
        "area_code": bulletin.area_code,
        "standby_for_notice": _id(bulletin.standby_for_notice),
        "first_reported_at": bulletin.first_reported_at,
        "created_at": bulletin.created_at,
        "updated_at": bulletin.updated_at,
        "superseded_by": _id(bulletin.superseded_by),
        "flags": list(bulletin.flags),
    }


def _version(row: Any, prefix: str = "") -> VersionRow:
    values = row._mapping

    def get(name: str) -> Any:
        return values[prefix + name]

    return VersionRow(
        bulletin_id=uuid.UUID(get("bulletin_id")),
        version=get("version"),
        msg_type=get("msg_type"),
        references=tuple(get("refs") or ()),
        state=get("state"),
        revision=get("revision"),
        texts=get("texts"),
        findings=tuple(get("findings") or ()),
        blocked_reasons=tuple(get("blocked_reasons") or ()),
        channels=tuple(get("channels") or ()),
        signoffs=get("signoffs") or {},
        author_id=uuid_or_none(get("author_id")),
        author_name=get("author_name"),
        drafted_at=when(get("drafted_at")),
        approved_by=uuid_or_none(get("approved_by")),
        approved_at=aware(get("approved_at")),
        published_at=aware(get("published_at")),
        expires_at=aware(get("expires_at")),
        rejected_by=uuid_or_none(get("rejected_by")),
        rejected_at=aware(get("rejected_at")),
        reason_codes=tuple(get("reason_codes") or ()),
        vetter_comment=get("vetter_comment"),
    )


def _version_columns(version: VersionRow) -> dict[str, Any]:
    return {
        "msg_type": version.msg_type,
        "refs": list(version.references),
        "state": version.state,
        "revision": version.revision,
        "texts": {lang: dict(sections) for lang, sections in version.texts.items()},
        "findings": [dict(finding) for finding in version.findings],
        "blocked_reasons": list(version.blocked_reasons),
        "channels": list(version.channels),
        "signoffs": {lang: dict(value) for lang, value in version.signoffs.items()},
        "author_id": _id(version.author_id),
        "author_name": version.author_name,
        "drafted_at": version.drafted_at,
        "approved_by": _id(version.approved_by),
        "approved_at": version.approved_at,
        "published_at": version.published_at,
        "expires_at": version.expires_at,
        "rejected_by": _id(version.rejected_by),
        "rejected_at": version.rejected_at,
        "reason_codes": list(version.reason_codes),
        "vetter_comment": version.vetter_comment,
    }


# Joined reads label the version's columns "v_*": both tables have bulletin_id and state.
_JOINED = (*bulletins.c, *(column.label(f"v_{column.name}") for column in bulletin_versions.c))
# Each bulletin with its current version's row, as `_JOINED` names them.
_WITH_LATEST_VERSION = (
    sa.select(*_JOINED)
    .select_from(bulletins)
    .join(
        bulletin_versions,
        sa.and_(
            bulletin_versions.c.bulletin_id == bulletins.c.bulletin_id,
            bulletin_versions.c.version == bulletins.c.current_version,
        ),
    )
)


class SqlBulletins:
    """Bulletins with their versions."""

    def __init__(self, session: AsyncSession, *, source: str) -> None:
        self._session = session
        self._source = source

    async def get(self, bulletin_id: uuid.UUID, *, for_update: bool = False) -> BulletinRow | None:
        """One bulletin (locked for the rest of the transaction with `for_update`)."""
        statement = sa.select(bulletins).where(bulletins.c.bulletin_id == str(bulletin_id))
        if for_update:
            statement = statement.with_for_update()
        row = (await self._session.execute(statement)).first()
        return None if row is None else _bulletin(row)

    async def view(
        self, bulletin_id: uuid.UUID, *, for_update: bool = False
    ) -> BulletinView | None:
        """A bulletin with every version, oldest first."""
        bulletin = await self.get(bulletin_id, for_update=for_update)
        if bulletin is None:
            return None
        rows = await self._session.execute(
            sa.select(bulletin_versions)
            .where(bulletin_versions.c.bulletin_id == str(bulletin_id))
            .order_by(bulletin_versions.c.version)
        )
        return BulletinView(bulletin, tuple(_version(row) for row in rows))

    async def standby_for(self, notice_id: uuid.UUID) -> uuid.UUID | None:
        """The standby bulletin drafted for a notice, if any."""
        statement = sa.select(bulletins.c.bulletin_id).where(
            bulletins.c.standby_for_notice == str(notice_id)
        )
        row = (await self._session.execute(statement)).first()
        return None if row is None else uuid.UUID(row.bulletin_id)

    async def of_rumor(
        self, rumor_id: uuid.UUID, *, states: Sequence[BulletinState]
    ) -> list[uuid.UUID]:
        """A rumor's bulletins in `states`, oldest first (its live one, its pending drafts)."""
        rows = await self._session.execute(
            sa.select(bulletins.c.bulletin_id)
            .where(bulletins.c.rumor_id == str(rumor_id), bulletins.c.state.in_(states))
            .order_by(bulletins.c.created_at)
        )
        return [uuid.UUID(row.bulletin_id) for row in rows]

    async def latest(
        self,
        *,
        states: Sequence[BulletinState] | None = None,
        drills: bool = True,
        limit: int = 200,
    ) -> list[tuple[BulletinRow, VersionRow]]:
        """Bulletins with their latest version, most recently changed first; without
        `drills`, real ones only."""
        statement = _WITH_LATEST_VERSION.order_by(bulletins.c.updated_at.desc()).limit(limit)
        if states is not None:
            statement = statement.where(bulletins.c.state.in_(states))
        if not drills:
            statement = statement.where(bulletins.c.status == "Actual")
        rows = await self._session.execute(statement)
        return [(_bulletin(row), _version(row, "v_")) for row in rows]

    async def citing(
        self, notice_id: uuid.UUID, *, states: Sequence[BulletinState]
    ) -> list[tuple[BulletinRow, VersionRow]]:
        """Bulletins in `states` that draw on `notice_id`, with their latest version.

        Read on every notice version: the bulletins' state narrows it in SQL, and so does
        the notice id in their JSON list (as text: an id is never part of another), so a
        department's years of bulletins are not read, and none is missed past a limit.
        """
        statement = _WITH_LATEST_VERSION.where(
            bulletins.c.state.in_(states),
            sa.cast(bulletins.c.notice_ids, sa.Text).contains(f'"{notice_id}"'),
        ).order_by(bulletins.c.created_at)
        rows = await self._session.execute(statement)
        found = [(_bulletin(row), _version(row, "v_")) for row in rows]
        return [
            (bulletin, version) for bulletin, version in found if notice_id in bulletin.notice_ids
        ]

    async def public_versions(self, *, limit: int = 200) -> list[tuple[BulletinRow, VersionRow]]:
        """Published versions of real (non-drill) bulletins, newest first: the feeds (those
        of superseded bulletins too: a newer message's references name them)."""
        rows = await self._session.execute(
            sa.select(*_JOINED)
            .select_from(bulletins)
            .join(bulletin_versions, bulletin_versions.c.bulletin_id == bulletins.c.bulletin_id)
            .where(bulletin_versions.c.state == "published", bulletins.c.status == "Actual")
            .order_by(bulletin_versions.c.published_at.desc())
            .limit(limit)
        )
        return [(_bulletin(row), _version(row, "v_")) for row in rows]

    async def apply(self, transition: BulletinTransition) -> None:
        """Write the rows, the timeline entries and the events of one step together."""
        session, bulletin = self._session, transition.bulletin
        if bulletin is not None:
            columns = _bulletin_columns(bulletin)
            if transition.created:
                statement: Any = sa.insert(bulletins).values(bulletin_id=str(bulletin.bulletin_id))
            else:
                statement = sa.update(bulletins).where(
                    bulletins.c.bulletin_id == str(bulletin.bulletin_id)
                )
            await session.execute(statement.values(**columns))
        for version in transition.inserted:
            await session.execute(
                sa.insert(bulletin_versions).values(
                    bulletin_id=str(version.bulletin_id),
                    version=version.version,
                    **_version_columns(version),
                )
            )
        for version in transition.updated:
            await session.execute(
                sa.update(bulletin_versions)
                .where(
                    bulletin_versions.c.bulletin_id == str(version.bulletin_id),
                    bulletin_versions.c.version == version.version,
                )
                .values(**_version_columns(version))
            )
        await record_all(session, transition.timeline)
        for event in transition.events:
            await enqueue(session, event, source=self._source)

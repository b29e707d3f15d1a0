"""The notice projection: releasable fields and fingerprints of intake's notices."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.notices import NoticeReceived, NoticeUpdated
from services.common.direct import DirectStatement, is_postgres_session
from services.common.inbox import Claim
from services.common.messaging import inbox_messages
from services.rumor_control.domain import NoticeRow, VersionApplied
from services.rumor_control.repository._sql import aware, insert_for
from services.rumor_control.tables import notices, standby_requests

__all__ = ["SqlNotices"]


def _notice(row: Any) -> NoticeRow:
    return NoticeRow(
        notice_id=uuid.UUID(row.notice_id),
        version=row.version,
        status=row.status,
        area=row.area,
        area_code=row.area_code,
        window_start=aware(row.window_start),
        window_end=aware(row.window_end),
        cancelled_at=aware(row.cancelled_at),
        fingerprints=frozenset(row.fingerprints or ()),
        key_ids=frozenset(row.fingerprint_key_ids or ()),
    )


class SqlNotices:
    """Notices as rumor_control knows them, and acknowledgements waiting for their notice."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock(self, notice_id: uuid.UUID) -> None:
        """Serialise this transaction with others about the same notice until it ends.

        A notice and its acknowledgement arrive on different topics and are handled at the
        same time; without this, each could miss the other's uncommitted row and no standby
        would be drafted. PostgreSQL: a transaction-scoped advisory lock (the same key
        `project_first_version` takes inside `apply_version`). SQLite: BEGIN IMMEDIATE
        already serialises every writer.
        """
        if self._session.get_bind().dialect.name == "postgresql":
            await self._session.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                {"key": f"aviso-rumor-notice-{notice_id}"},
            )

    async def get(self, notice_id: uuid.UUID) -> NoticeRow | None:
        """The projected notice, if its events have arrived."""
        statement = sa.select(notices).where(notices.c.notice_id == str(notice_id))
        row = (await self._session.execute(statement)).first()
        return None if row is None else _notice(row)

    async def get_many(self, notice_ids: Iterable[uuid.UUID]) -> list[NoticeRow]:
        """The projected notices among `notice_ids`."""
        ids = [str(i) for i in notice_ids]
        if not ids:
            return []
        rows = await self._session.execute(sa.select(notices).where(notices.c.notice_id.in_(ids)))
        return [_notice(row) for row in rows]

    async def recent(self, *, since: datetime) -> list[NoticeRow]:
        """Notices whose window ends after `since` (candidates for rumor suggestions)."""
        rows = await self._session.execute(
            sa.select(notices).where(
                sa.or_(notices.c.window_end.is_(None), notices.c.window_end >= since)
            )
        )
        return [_notice(row) for row in rows]

    async def apply_version(
        self, notice: NoticeReceived | NoticeUpdated, *, at: datetime
    ) -> VersionApplied:
        """Apply a received/updated version: newest fields win, fingerprints accumulate.

        Takes the notice's lock first (`lock`), and the standby request an acknowledgement
        left waiting for this notice. A notice seen for the first time (nearly every one)
        is one statement on PostgreSQL: the lock, the request's DELETE and the row's INSERT
        in `project_first_version` (rumor_control_0009).
        """
        values = _version_values(notice, at=at)
        if is_postgres_session(self._session):
            row = await _FIRST_VERSION_PG.fetchrow(self._session, {**values, **_NO_CLAIM})
            taken, inserted = row["taken"], row["inserted"]
        else:
            # SQLite: BEGIN IMMEDIATE already serialises every writer (no lock to take).
            deleted = await self._session.execute(_take_request(), values)
            added = await self._session.execute(_insert_version(sqlite.insert), values)
            taken = bool(getattr(deleted, "rowcount", 0))
            inserted = bool(getattr(added, "rowcount", 0))
        if not inserted:
            await self.merge_version(notice, at=at)
        return VersionApplied(first_seen=bool(inserted), standby_requested=bool(taken))

    async def project_versions(
        self, versions: Sequence[NoticeReceived | NoticeUpdated], *, at: datetime
    ) -> list[VersionApplied]:
        """`apply_version`'s first part for several versions at once, in order: each one's
        lock, the standby request it takes and its row if the notice is new. A version
        whose notice was known (`first_seen` False) still needs `merge_version`, called in
        the same order. PostgreSQL: one statement for all of them."""
        if not versions:
            return []
        rows = [_version_values(notice, at=at) for notice in versions]
        if is_postgres_session(self._session):
            found = await _FIRST_VERSIONS_PG.fetch(self._session, _json_texts(rows))
            return [
                VersionApplied(first_seen=r["inserted"], standby_requested=r["taken"])
                for r in found
            ]
        applied = []
        for values in rows:
            deleted = await self._session.execute(_take_request(), values)
            added = await self._session.execute(_insert_version(sqlite.insert), values)
            applied.append(
                VersionApplied(
                    first_seen=bool(getattr(added, "rowcount", 0)),
                    standby_requested=bool(getattr(deleted, "rowcount", 0)),
                )
            )
        return applied

    async def project_new_claiming(
        self, notice: NoticeReceived | NoticeUpdated, *, at: datetime, claim: Claim
    ) -> bool:
        """PostgreSQL, the unit of work's only write: project a notice new here with the
        consumer's inbox `claim`, in one statement committed by itself. False: nothing
        written (the message is recorded, the notice known or awaited by a standby
        request), and `apply_version` decides in the usual transaction."""
        values = {**_version_values(notice, at=at), **_claim_values(claim)}
        row = await _FIRST_VERSION_PG.fetchrow(self._session, values, lone=True)
        return bool(row["inserted"])

    async def merge_version(self, notice: NoticeReceived | NoticeUpdated, *, at: datetime) -> None:
        """A later (or redelivered, or out-of-order) version of a notice already projected.

        Versions may arrive out of order after a redelivery, so the releasable fields are
        replaced only by a higher version, while the fingerprints are always added.
        """
        key = notices.c.notice_id == str(notice.notice_id)
        existing = (
            await self._session.execute(sa.select(notices).where(key).with_for_update())
        ).one()
        values: dict[str, Any] = {
            "fingerprints": sorted(
                set(existing.fingerprints or ()) | set(notice.restricted_fingerprints)
            ),
            "fingerprint_key_ids": sorted(
                set(existing.fingerprint_key_ids or ()) | {notice.fingerprint_key_id}
            ),
            "updated_at": at,
        }
        if notice.version > existing.version:
            values.update(
                version=notice.version,
                status=notice.status,
                area=notice.area,
                area_code=notice.area_code,
                window_start=notice.window_start,
                window_end=notice.window_end,
            )
        await self._session.execute(sa.update(notices).where(key).values(**values))

    async def cancel(
        self, *, notice_id: uuid.UUID, version: int, status: str, at: datetime
    ) -> None:
        """Mark a notice cancelled (creating a bare row if the cancel came first)."""
        existing = await self.get(notice_id)
        if existing is None:
            await self._session.execute(
                sa.insert(notices).values(
                    notice_id=str(notice_id),
                    version=version,
                    status=status,
                    cancelled_at=at,
                    fingerprints=[],
                    fingerprint_key_ids=[],
                    updated_at=at,
                )
            )
            return
        await self._session.execute(
            sa.update(notices)
            .where(notices.c.notice_id == str(notice_id))
            .values(cancelled_at=at, version=max(version, existing.version), updated_at=at)
        )

    async def fingerprints_of(
        self, notice_ids: Iterable[uuid.UUID]
    ) -> tuple[frozenset[str], frozenset[str]]:
        """The union of these notices' restricted-term fingerprints, and the key ids used."""
        found: set[str] = set()
        key_ids: set[str] = set()
        for notice in await self.get_many(notice_ids):
            found |= notice.fingerprints
            key_ids |= notice.key_ids
        return frozenset(found), frozenset(key_ids)

    async def request_standby(
        self, *, notice_id: uuid.UUID, alert_id: uuid.UUID, by: uuid.UUID, at: datetime
    ) -> None:
        """Remember an acknowledgement whose notice has not arrived yet."""
        statement = (
            insert_for(self._session)(standby_requests)
            .values(
                notice_id=str(notice_id),
                alert_id=str(alert_id),
                acknowledged_by=str(by),
                requested_at=at,
            )
            .on_conflict_do_nothing(index_elements=["notice_id"])
        )
        await self._session.execute(statement)


_VERSION_COLUMNS = (
    "notice_id", "version", "status", "area", "area_code", "window_start", "window_end",
    "fingerprints", "fingerprint_key_ids", "updated_at",
)  # fmt: skip


def _insert_version(insert: Any) -> Any:
    """INSERT of a notice's first version, bound by column name; nothing if it exists."""
    bound = {name: sa.bindparam(name, type_=notices.c[name].type) for name in _VERSION_COLUMNS}
    return insert(notices).values(**bound).on_conflict_do_nothing(index_elements=["notice_id"])


@cache
def _take_request() -> sa.Delete:
    """DELETE of the standby request waiting for a notice (SQLite; PostgreSQL folds it)."""
    return sa.delete(standby_requests).where(
        standby_requests.c.notice_id
        == sa.bindparam("notice_id", type_=standby_requests.c.notice_id.type)
    )


def _version_values(notice: NoticeReceived | NoticeUpdated, *, at: datetime) -> dict[str, Any]:
    """A version's row, by column name (restricted detail arrives only as fingerprints)."""
    return {
        "notice_id": str(notice.notice_id),
        "version": notice.version,
        "status": notice.status,
        "area": notice.area,
        "area_code": notice.area_code,
        "window_start": notice.window_start,
        "window_end": notice.window_end,
        "fingerprints": sorted(set(notice.restricted_fingerprints)),
        "fingerprint_key_ids": [notice.fingerprint_key_id],
        "updated_at": at,
    }


_CLAIM_PARAMETERS = ("consumer", "message_id", "topic", "processed_at")
_NO_CLAIM: dict[str, Any] = dict.fromkeys(f"c_{name}" for name in _CLAIM_PARAMETERS)


def _claim_values(claim: Claim) -> dict[str, Any]:
    return {f"c_{name}": value for name, value in claim.row().items()}


def _first_version_pg() -> sa.Select[Any]:
    """PostgreSQL: `project_first_version` (rumor_control_0009), a function so that its
    reads come after the notice's lock (see the migration); with a claim (`:c_*`) or
    without (nulls)."""
    version = [sa.bindparam(name, type_=notices.c[name].type) for name in _VERSION_COLUMNS]
    claim = [
        sa.bindparam(f"c_{name}", type_=inbox_messages.c[name].type) for name in _CLAIM_PARAMETERS
    ]
    applied = sa.func.project_first_version(*version, *claim).table_valued("taken", "inserted")
    return sa.select(applied.c.taken, applied.c.inserted)


_FIRST_VERSION_PG = DirectStatement(_first_version_pg)


def _first_versions_pg() -> sa.TextClause:
    """PostgreSQL: `project_first_version` for every row of the arrays, in their order,
    without a claim, from one statement: the function is VOLATILE, so each of its own
    statements still takes its snapshot after that row's lock was granted (see
    rumor_control_0009), and the rows are taken in order by the nested loop the LATERAL
    call makes (the unnest drives it)."""
    names = ", ".join(_VERSION_COLUMNS)
    arrays = ", ".join(
        f"CAST(:{name} AS {notices.c[name].type.compile(dialect=_PG)}[])"
        for name in _VERSION_COLUMNS
    )
    columns = ", ".join(f"v.{name}" for name in _VERSION_COLUMNS)
    no_claim = "NULL::varchar, NULL::varchar, NULL::varchar, NULL::timestamptz"
    # Identifiers are this module's constants; every value is bound.
    sql = (
        f"SELECT f.taken, f.inserted FROM unnest({arrays}) "  # noqa: S608
        f"WITH ORDINALITY AS v({names}, _n) "
        f"CROSS JOIN LATERAL project_first_version({columns}, {no_claim}) AS f "
        "ORDER BY v._n"
    )
    return sa.text(sql).bindparams(
        *(sa.bindparam(name, type_=_array_of(notices.c[name].type)) for name in _VERSION_COLUMNS)
    )


def _array_of(column_type: Any) -> Any:
    """The array type a column's values go in. A JSON column's values are serialised each
    (`_json_texts`) and sent as text: SQLAlchemy's ARRAY would take a JSON list for
    another dimension of the array."""
    return postgresql.ARRAY(sa.Text if isinstance(column_type, sa.JSON) else column_type)


def _json_texts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """`rows` as `_first_versions_pg` takes them: one list per column, JSON as text."""
    arrays: dict[str, list[Any]] = {name: [row[name] for row in rows] for name in _VERSION_COLUMNS}
    for name in _JSON_COLUMNS:
        arrays[name] = [json.dumps(value) for value in arrays[name]]
    return arrays


_JSON_COLUMNS = tuple(
    name for name in _VERSION_COLUMNS if isinstance(notices.c[name].type, sa.JSON)
)
_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_FIRST_VERSIONS_PG = DirectStatement(_first_versions_pg)

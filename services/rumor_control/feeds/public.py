"""What the public feeds show: published versions of real bulletins, never drills; one
entry per chain (a superseded bulletin gives way to the Update that replaced it)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from schemas.base import is_drill, parse_version_ref
from services.rumor_control.domain import BulletinRow, NotFound, VersionRow
from services.rumor_control.unit_of_work import RumorControlUoW
from services.rumor_control.vetting.common import load_bulletin

__all__ = ["PublicVersion", "latest_per_bulletin", "public_entries", "public_version"]

PublicVersion = tuple[BulletinRow, VersionRow, list[VersionRow]]


async def public_entries(
    uow: RumorControlUoW, *, latest_only: bool = True
) -> list[tuple[BulletinRow, VersionRow]]:
    """Published versions of real bulletins (never drills), newest first; with
    `latest_only`, one per bulletin: its latest word (a Cancel once retracted)."""
    rows = await uow.bulletins.public_versions()
    return latest_per_bulletin(rows) if latest_only else rows


def latest_per_bulletin(
    rows: Sequence[tuple[BulletinRow, VersionRow]],
) -> list[tuple[BulletinRow, VersionRow]]:
    """The first (newest) version of each bulletin among `rows`, in their order; none of a
    superseded bulletin (its chain's newer message stands for it)."""
    seen: set[uuid.UUID] = set()
    latest: list[tuple[BulletinRow, VersionRow]] = []
    for bulletin, version in rows:
        if bulletin.state == "superseded":
            continue
        if bulletin.bulletin_id not in seen:
            seen.add(bulletin.bulletin_id)
            latest.append((bulletin, version))
    return latest


async def public_version(
    uow: RumorControlUoW, *, bulletin_id: uuid.UUID, version: int
) -> PublicVersion:
    """One published version of a real bulletin (a superseded one too: newer messages
    reference it), with the versions its CAP references name (its own and its chain's)."""
    view = await load_bulletin(uow, bulletin_id)
    if is_drill(view.bulletin.status):
        raise NotFound(str(bulletin_id))  # drills are never public
    for candidate in view.versions:
        if candidate.version == version and candidate.state == "published":
            versions = list(view.versions)
            earlier = {parse_version_ref(ref)[0] for ref in candidate.references} - {bulletin_id}
            for other in sorted(earlier):
                versions += (await load_bulletin(uow, other)).versions
            return view.bulletin, candidate, versions
    raise NotFound(f"{bulletin_id}:{version}")

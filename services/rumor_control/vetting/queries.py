"""Reading bulletins: the list (latest version of each) and one bulletin with its versions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from services.rumor_control.domain import BulletinRow, BulletinState, VersionRow
from services.rumor_control.domain.bulletins import BulletinView
from services.rumor_control.unit_of_work import RumorControlUoW
from services.rumor_control.vetting.common import load_bulletin

__all__ = ["get_bulletin", "list_bulletins"]


async def list_bulletins(
    uow: RumorControlUoW, *, states: Sequence[BulletinState] | None = None, drills: bool = True
) -> list[tuple[BulletinRow, VersionRow]]:
    """Bulletins with their latest version, most recently changed first (real ones only
    without `drills`)."""
    return await uow.bulletins.latest(states=states, drills=drills)


async def get_bulletin(uow: RumorControlUoW, *, bulletin_id: uuid.UUID) -> BulletinView:
    """One bulletin with its versions."""
    return await load_bulletin(uow, bulletin_id)

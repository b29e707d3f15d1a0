"""The public feeds (no token): Atom and CAP 1.2. Drills never appear."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from services.rumor_control import feeds
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import VersionRow
from services.rumor_control.http.common import BulletinId, problems

__all__ = ["ATOM", "CAP", "routes"]

ATOM = "application/atom+xml; charset=utf-8"
CAP = "application/cap+xml; charset=utf-8"


def routes(deps: RumorControlDeps) -> APIRouter:
    """`/feeds/bulletins.atom`, `/feeds/cap.xml` and one CAP message per version."""
    router = APIRouter(prefix="/feeds", tags=["public feeds"])

    @router.get("/bulletins.atom", summary="Published bulletins, Atom", response_class=Response)
    async def atom() -> Response:
        async with deps.unit_of_work() as uow:
            rows = await feeds.public_entries(uow)
        body = feeds.atom_feed(rows, department=deps.department, base_url=deps.public_base_url)
        return Response(body, media_type=ATOM)

    @router.get(
        "/cap.xml", summary="Published bulletins as CAP 1.2 (Atom index)", response_class=Response
    )
    async def cap_index() -> Response:
        async with deps.unit_of_work() as uow:
            every = await feeds.public_entries(uow, latest_only=False)
        versions: dict[uuid.UUID, list[VersionRow]] = {}
        for bulletin, version in every:
            versions.setdefault(bulletin.bulletin_id, []).append(version)
        body = feeds.cap_feed(
            feeds.latest_per_bulletin(every),
            versions=versions,
            department=deps.department,
            gazetteer=deps.gazetteer,
            base_url=deps.public_base_url,
        )
        return Response(body, media_type=ATOM)

    @router.get(
        "/cap/{bulletin_id}/{version}.xml", summary="One CAP 1.2 message", response_class=Response
    )
    async def cap_message(bulletin_id: BulletinId, version: int) -> Response:
        with problems():
            async with deps.unit_of_work() as uow:
                bulletin, row, versions = await feeds.public_version(
                    uow, bulletin_id=bulletin_id, version=version
                )
        alert = feeds.cap_alert(
            bulletin,
            row,
            versions=versions,
            department=deps.department,
            gazetteer=deps.gazetteer,
            base_url=deps.public_base_url,
        )
        return Response(feeds.cap_document(alert), media_type=CAP)

    return router

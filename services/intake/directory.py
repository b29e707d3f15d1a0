"""Who is in the directory in force: router's announcements, kept for the access decision.

Router owns the directory; intake keeps only the person ids of the newest version it was
told about (`directory.published` on `aviso.directory.v1`), so that permissions.py can tell
a contact who is a person in the directory from any other holder of a contact token.

"Newest" is the announcement router made last (`published_at`, then `version`). Versions
alone would do while router keeps its database; ordering by when the version became current
also survives a router rebuilt from scratch (its versions start again from 1), and an old
announcement delivered again by the outbox still loses to the one that followed it.
"""

from __future__ import annotations

from typing import Any, Protocol

from schemas.directory import DirectoryPublished
from services.common.db import AfterCommit
from services.common.logging import get_logger
from services.intake.unit_of_work import Directory

__all__ = ["DirectoryUoW", "directory_fact", "record_directory"]

log = get_logger(__name__)


class DirectoryUoW(Protocol):
    """All that recording the directory needs: IntakeUoW has it, and so has the consumer's
    transaction seen through subscribers.py."""

    @property
    def directory(self) -> Directory: ...

    def after_commit(self, effect: AfterCommit) -> None: ...


async def record_directory(uow: DirectoryUoW, *, event: DirectoryPublished) -> bool:
    """Keep `event`'s people if it is newer than the directory recorded; True if it was."""
    recorded = await uow.directory.newest()
    version, people = event.version, len(event.person_ids)
    if recorded is not None and (event.published_at, version) <= recorded:
        uow.after_commit(lambda: log.info("directory.stale_ignored", directory_version=version))
        return False
    await uow.directory.replace(
        version=version, person_ids=tuple(str(p) for p in event.person_ids), at=event.published_at
    )
    uow.after_commit(
        lambda: log.info("directory.recorded", directory_version=version, people=people)
    )
    return True


async def directory_fact(uow: DirectoryUoW) -> dict[str, Any]:
    """The directory intake holds, for `/internal/ready`: version and when router published
    it (compare with router's `GET /v1/directory`), never who is in it."""
    recorded = await uow.directory.newest()
    if recorded is None:
        return {"version": None, "published_at": None}
    published_at, version = recorded
    return {"version": version, "published_at": published_at.isoformat()}

"""Directory use cases: read the directory in force, replace it with a validated one."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from schemas.directory import DIRECTORY_ID, DirectoryPublished
from services.common.logging import get_logger
from services.router.deps import RouterDeps
from services.router.directory.document import InvalidDirectory
from services.router.domain import (
    DirectoryDocument,
    DirectorySource,
    DirectoryVersion,
    directory_digest,
    validate_directory,
)
from services.router.errors import DirectoryConflict
from services.router.unit_of_work import RouterUoW

__all__ = ["announce_current_directory", "current_directory", "replace_directory"]

log = get_logger(__name__)


async def current_directory(uow: RouterUoW) -> DirectoryVersion | None:
    """The directory in force."""
    return await uow.directory.current()


async def announce_current_directory(uow: RouterUoW) -> int | None:
    """Announce the directory in force again, exactly as when it became current.

    Run at start: a directory stored before announcements existed (or whose announcement
    a consumer never saw) reaches intake; one intake already has is ignored there, since
    it carries the same version and time.
    """
    current = await uow.directory.current()
    if current is None:
        return None
    await uow.directory.announce(_announcement(current))
    return current.version


def _announcement(directory: DirectoryVersion) -> DirectoryPublished:
    return DirectoryPublished(
        directory_id=DIRECTORY_ID,
        version=directory.version,
        person_ids=tuple(person.id for person in directory.document.people),
        published_at=directory.created_at,
    )


async def replace_directory(
    uow: RouterUoW,
    *,
    deps: RouterDeps,
    document: DirectoryDocument,
    source: DirectorySource,
    created_by: str,
    expected_version: int | None = None,
) -> DirectoryVersion:
    """Store a validated directory as the new current version (open alerts keep theirs)."""
    errors = validate_directory(document)
    if errors:
        raise InvalidDirectory(errors)
    now = deps.clock()
    current = await uow.directory.current()
    current_version = current.version if current else 0
    if expected_version is not None and expected_version != current_version:
        raise DirectoryConflict(current_version=current_version)
    stored = DirectoryVersion(
        version=current_version + 1,
        document=document,
        digest=directory_digest(document),
        source=source,
        created_by=created_by,
        created_at=now,
    )
    try:
        await uow.directory.add(
            version=stored.version,
            document=document,
            digest=stored.digest,
            source=source,
            created_by=created_by,
            at=now,
        )
    except IntegrityError:
        # A concurrent writer stored this very version first: it is the current one now.
        raise DirectoryConflict(current_version=stored.version) from None
    # Intake decides from this which contact tokens may read restricted detail: ids only.
    await uow.directory.announce(_announcement(stored))
    uow.after_commit(
        lambda: log.info(
            "directory.replaced",
            directory_version=stored.version,
            source=source,
            people=len(document.people),
            steps=len(document.policy.steps),
            repeat=document.policy.repeat,
            delegations=len(document.spoc.delegations),
        )
    )
    return stored

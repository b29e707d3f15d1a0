"""Loading the configured directory file at start-up: a flow of short transactions.

Not a single use case: reading the file happens outside any transaction, and a lost race
with another instance loading the same file is settled by reading again afterwards.
"""

from __future__ import annotations

from pathlib import Path

from services.common.logging import get_logger
from services.router.deps import RouterDeps
from services.router.directory.document import InvalidDirectory, read_directory_file
from services.router.directory.use_cases import (
    announce_current_directory,
    current_directory,
    replace_directory,
)
from services.router.domain import directory_digest
from services.router.errors import DirectoryConflict

__all__ = ["announce_directory_at_start", "load_directory_file"]

log = get_logger(__name__)


async def load_directory_file(*, deps: RouterDeps, path: Path) -> int | None:
    """Apply the configured YAML file if it changed since it was last loaded.

    Returns the new version, or None when the file was unchanged (edits made through
    the API since then stay in force). An invalid file is reported loudly and the
    stored directory stays; with no stored directory at all, start-up fails.
    """
    try:
        document = read_directory_file(path)
    except (InvalidDirectory, OSError) as exc:
        errors = (
            [f"{e.path}: {e.message}" for e in exc.errors]
            if isinstance(exc, InvalidDirectory)
            else [type(exc).__name__]
        )
        async with deps.unit_of_work() as uow:
            stored = await current_directory(uow)
        log.error(
            "directory.file_invalid",
            path=str(path),
            errors=errors,
            keeping_version=stored.version if stored else None,
        )
        if stored is None:
            raise
        return None
    digest = directory_digest(document)
    if await _file_digest(deps) == digest:
        log.info("directory.file_unchanged", path=str(path))
        return None
    try:
        async with deps.unit_of_work() as uow:
            replaced = await replace_directory(
                uow, deps=deps, document=document, source="file", created_by=f"file:{path.name}"
            )
            await uow.commit()
    except DirectoryConflict:
        # Another instance loaded it at the same moment.
        if await _file_digest(deps) == digest:
            return None
        raise
    return replaced.version


async def _file_digest(deps: RouterDeps) -> str | None:
    async with deps.unit_of_work() as uow:
        return await uow.directory.last_file_digest()


async def announce_directory_at_start(*, deps: RouterDeps) -> None:
    """Announce the directory in force once more (see announce_current_directory)."""
    async with deps.unit_of_work() as uow:
        version = await announce_current_directory(uow)
        await uow.commit()
    log.info("directory.announced", directory_version=version)

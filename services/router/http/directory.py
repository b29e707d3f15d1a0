"""`GET/PUT /v1/directory`: the directory document with its version as an ETag."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response
from pydantic import BaseModel, ConfigDict

from services.common.auth import Principal
from services.common.problems import Problem, bad_request, not_found, problem_type
from services.router import directory
from services.router.deps import RouterDeps
from services.router.directory import InvalidDirectory
from services.router.domain import DirectoryDocument, DirectoryVersion
from services.router.errors import DirectoryConflict
from services.router.permissions import Action, allowed

__all__ = ["DirectoryView", "directory_router"]

_admins = allowed(Action.MANAGE_DIRECTORY)


class DirectoryView(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int
    source: str
    created_by: str
    created_at: datetime
    digest: str
    directory: DirectoryDocument


def _directory_view(stored: DirectoryVersion, response: Response) -> DirectoryView:
    response.headers["ETag"] = f'"v{stored.version}"'
    return DirectoryView(
        version=stored.version,
        source=stored.source,
        created_by=stored.created_by,
        created_at=stored.created_at,
        digest=stored.digest,
        directory=stored.document,
    )


def _expected_version(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    try:
        return int(text.removeprefix("v"))
    except ValueError:
        raise bad_request('If-Match must be an ETag from GET /v1/directory, e.g. "v3".') from None


def _invalid(exc: InvalidDirectory) -> Problem:
    return Problem(
        422,
        "Directory refused",
        "The directory breaks the rules below; nothing was stored.",
        type=problem_type("directory-invalid"),
        extensions={"errors": [{"path": e.path, "message": e.message} for e in exc.errors]},
    )


def _conflict(exc: DirectoryConflict, *, if_match: str | None) -> Problem:
    return Problem(
        412 if if_match else 409,
        "Directory changed",
        f"The directory is at version {exc.current_version}; read it again first.",
        type=problem_type("directory-conflict"),
        extensions={"current_version": exc.current_version},
    )


def directory_router(deps: RouterDeps) -> APIRouter:
    """The directory: people, the SPOC designation with delegations, the escalation policy."""
    router = APIRouter(prefix="/v1/directory", tags=["directory"])

    @router.get("", summary="The directory in force", responses={404: {}})
    async def get_directory(
        response: Response, _principal: Annotated[Principal, Depends(_admins)]
    ) -> DirectoryView:
        async with deps.unit_of_work() as uow:
            stored = await directory.current_directory(uow)
        if stored is None:
            raise not_found("No directory yet: PUT one, or set AVISO_ROUTER_DIRECTORY_FILE.")
        return _directory_view(stored, response)

    @router.put(
        "",
        summary="Replace the directory (validated in full; open alerts keep their snapshot)",
        responses={409: {"description": "If-Match no longer current"}, 422: {}},
    )
    async def put_directory(
        document: DirectoryDocument,
        response: Response,
        principal: Annotated[Principal, Depends(_admins)],
        if_match: Annotated[str | None, Header()] = None,
    ) -> DirectoryView:
        expected = _expected_version(if_match)
        try:
            async with deps.unit_of_work() as uow:
                stored = await directory.replace_directory(
                    uow,
                    deps=deps,
                    document=document,
                    source="api",
                    created_by=principal.name,
                    expected_version=expected,
                )
                await uow.commit()
        except InvalidDirectory as exc:
            raise _invalid(exc) from None
        except DirectoryConflict as exc:
            raise _conflict(exc, if_match=if_match) from None
        return _directory_view(stored, response)

    return router

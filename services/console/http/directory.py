"""Admin: the escalation directory as YAML, reviewed as a diff against the version in
force, then saved through router's `PUT /v1/directory` (If-Match: that version).

Router validates in full; its refusals come back as problem+json with the path of each
wrong field, shown next to the text area. Router has no dry-run, so the review step
checks the YAML itself and rules are checked on save.
"""

from __future__ import annotations

import difflib
import json
from datetime import date, datetime
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.console.api import ApiProblem
from services.console.deps import ConsoleDeps
from services.console.http.pages import Viewer, check_csrf, field, redirect, render, viewer
from services.console.http.problems import field_errors

__all__ = ["DirectoryInput", "as_yaml", "directory_diff", "directory_router", "parse_directory"]

Me = Annotated[Viewer, Depends(viewer)]


class DirectoryInput(ValueError):
    """The text is not a YAML mapping (the message says where)."""


def _plain(value: Any) -> Any:
    # YAML reads unquoted timestamps as datetimes; the API speaks ISO 8601 strings.
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def parse_directory(text: str) -> dict[str, Any]:
    """The directory document an admin wrote, as JSON-ready data."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise DirectoryInput(f"Not valid YAML{where}.") from None
    if not isinstance(data, dict):
        raise DirectoryInput("The directory is a mapping with people, spoc and policy.")
    plain: dict[str, Any] = _plain(data)
    return plain


def as_yaml(document: dict[str, Any]) -> str:
    """A document as the YAML an admin edits (keys in the API's order, Unicode kept)."""
    text: str = yaml.safe_dump(
        json.loads(json.dumps(document)), sort_keys=False, allow_unicode=True, width=100
    )
    return text


def directory_diff(current: dict[str, Any], proposed: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, line) of a unified diff: kind is "add", "del", "hunk" or "same"."""
    lines = difflib.unified_diff(
        as_yaml(current).splitlines(),
        as_yaml(proposed).splitlines(),
        "in force",
        "proposed",
        lineterm="",
        n=2,
    )
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    return [(kinds.get(line[:1], "same"), line) for line in lines if line[:3] not in ("---", "+++")]


async def _current(deps: ConsoleDeps, me: Viewer) -> dict[str, Any]:
    found: dict[str, Any] = await deps.api.call("GET", "router", "/v1/directory", token=me.token)
    return found


def directory_router(deps: ConsoleDeps) -> APIRouter:
    """The directory page, its review (diff) and saving."""
    router = APIRouter(tags=["admin"])
    _page_route(router, deps)
    _review_route(router, deps)
    _save_route(router, deps)
    return router


def _page_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/admin/directory", include_in_schema=False)
    async def directory(request: Request, me: Me) -> Response:
        found = await _current(deps, me)
        return render(
            request,
            "directory.html.j2",
            d=found,
            text=as_yaml(found["directory"]),
            saved=request.query_params.get("saved"),
        )


async def _review_page(
    request: Request,
    deps: ConsoleDeps,
    me: Viewer,
    text: str,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    """The proposed text with its diff against the version in force (or why it has none)."""
    found = await _current(deps, me)
    diff: list[tuple[str, str]] | None = None
    try:
        diff = directory_diff(found["directory"], parse_directory(text))
    except DirectoryInput as exc:
        errors, status = {"": str(exc)}, 422
    return render(
        request,
        "directory_review.html.j2",
        status_code=status,
        d=found,
        text=text,
        diff=diff,
        errors=errors or {},
    )


def _review_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/admin/directory/review", include_in_schema=False)
    async def review(request: Request, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        return await _review_page(request, deps, me, (form.get("text") or [""])[0])


def _save_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/admin/directory", include_in_schema=False)
    async def save(request: Request, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        text = (form.get("text") or [""])[0]
        try:
            document = parse_directory(text)
        except DirectoryInput as exc:
            return await _review_page(request, deps, me, text, errors={"": str(exc)}, status=422)
        try:
            stored = await deps.api.call(
                "PUT",
                "router",
                "/v1/directory",
                token=me.token,
                json=document,
                headers={"If-Match": f'"v{field(form, "version")}"'},
            )
        except ApiProblem as problem:
            if problem.status in (409, 412, 422):
                errors = field_errors(problem)
                return await _review_page(request, deps, me, text, errors=errors, status=422)
            raise
        return redirect(f"/admin/directory?saved=v{stored['version']}")

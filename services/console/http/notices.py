"""The SPOC's staff: record a notice the field office gave by phone (`received_via=phone`).

The form posts to intake's `POST /v1/notices` as the signed-in person, so intake applies
the same validation as to any API call and its refusals show next to each field. Intake
lets only the `field_office` role submit (the notice is recorded as that office's), so
the page is offered to that role alone; staff sign in with a field-office account.
Restricted detail goes straight to intake and is never logged here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.common.logging import get_logger
from services.console.api import ApiProblem
from services.console.deps import ConsoleDeps
from services.console.http.pages import Viewer, check_csrf, field, render, viewer
from services.console.http.problems import field_errors
from services.console.permissions import may_record_notice

__all__ = ["RESTRICTED_LISTS", "errors_by_field", "notice_body", "notices_router"]

log = get_logger(__name__)
Me = Annotated[Viewer, Depends(viewer)]
_ZONE = ZoneInfo("America/Chicago")
STATUSES = ("Actual", "Exercise", "Test")
OPERATIONS = ("targeted_arrest", "worksite", "surveillance", "other")
RESTRICTED_LISTS = ("names", "addresses", "vehicles", "exact_locations")
_FIELDS = (
    "reference", "status", "operation_type", "window_start", "window_end", "area",
    "area_code", "summary", "field_office_name", "agent_name", "agent_phone", "free_text",
    "public_safety_nexus", *RESTRICTED_LISTS,
)  # fmt: skip


def _aware(value: str) -> str | None:
    """A form's local date-time (department time zone) as ISO 8601; intake judges the rest."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=_ZONE).isoformat()
    except ValueError:
        return value  # intake refuses it with its own message, next to the field


def notice_body(values: dict[str, str], *, nexus: bool) -> dict[str, Any]:
    """The `POST /v1/notices` body of the phone form."""
    agent = {"name": values["agent_name"], "phone": values["agent_phone"] or None}
    restricted: dict[str, Any] = {
        key: [line.strip() for line in values[key].splitlines() if line.strip()]
        for key in RESTRICTED_LISTS
    }
    restricted["free_text"] = values["free_text"] or None
    return {
        "reference": values["reference"],
        "received_via": "phone",
        "status": values["status"],
        "operation_type": values["operation_type"],
        "public_safety_nexus": nexus,
        "window_start": _aware(values["window_start"]),
        "window_end": _aware(values["window_end"]),
        "area": values["area"],
        "area_code": values["area_code"] or None,
        "summary": values["summary"],
        "source": {"field_office_name": values["field_office_name"], "agent": agent},
        "restricted": restricted,
    }


# Form field -> the path of the same value in intake's request body (and its errors).
_API_PATHS: dict[str, str] = {
    **{name: name for name in _FIELDS},
    "field_office_name": "source.field_office_name",
    "agent_name": "source.agent.name",
    "agent_phone": "source.agent.phone",
    "free_text": "restricted.free_text",
    **{key: f"restricted.{key}" for key in RESTRICTED_LISTS},
}


def errors_by_field(errors: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Intake's errors by form field, and those about no single field (shown on top)."""
    placed: dict[str, str] = {}
    general: list[str] = []
    for path, message in errors.items():
        name = next(
            (
                name
                for name, api in _API_PATHS.items()
                if path == api or path.startswith((f"{api}[", f"{api}."))
            ),
            None,
        )
        if name is None:
            general.append(message)
        else:
            placed[name] = f"{placed[name]}; {message}" if name in placed else message
    return placed, general


def notices_router(deps: ConsoleDeps) -> APIRouter:
    """The phone-notice form and its submission."""
    router = APIRouter(tags=["notices"])
    _form_route(router, deps)
    _submit_route(router, deps)
    return router


def _form_page(
    request: Request,
    deps: ConsoleDeps,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    recorded: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    areas = dict(reversed(deps.places))  # area code -> its first (Spanish) name
    placed, general = errors_by_field(errors or {})
    return render(
        request,
        "notice_new.html.j2",
        status_code=status,
        values=values or {"status": "Actual", "operation_type": "targeted_arrest"},
        errors=placed,
        general=general,
        recorded=recorded,
        statuses=STATUSES,
        operations=OPERATIONS,
        areas=sorted(areas.items()),
        lists=RESTRICTED_LISTS,
    )


def _refused(request: Request) -> Response:
    return render(request, "error.html.j2", status_code=403, key="error.forbidden")


def _form_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/notices/new", include_in_schema=False)
    async def form(request: Request, me: Me) -> Response:
        if not may_record_notice(me.session.role):
            return _refused(request)
        return _form_page(request, deps)


def _submit_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/notices/new", include_in_schema=False)
    async def submit(request: Request, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        if not may_record_notice(me.session.role):
            return _refused(request)
        values = {name: field(form, name) for name in _FIELDS}
        body = notice_body(values, nexus=values["public_safety_nexus"] == "yes")
        try:
            recorded = await deps.api.call(
                "POST", "intake", "/v1/notices", token=me.token, json=body
            )
        except ApiProblem as problem:
            if problem.status in (409, 422):
                errors = field_errors(problem)
                return _form_page(request, deps, values=values, errors=errors, status=422)
            raise
        log.info("console.notice_recorded", notice_id=recorded["id"], user_id=me.session.user_id)
        return _form_page(request, deps, recorded=recorded)

"""Admin: the console's own accounts (create, disable, reset password and TOTP, change role,
and, when single sign-on is configured, link or unlink the person's identity there).

The console owns these accounts, so here, unlike every other page, the console decides who
may act (permissions.may_manage_users: admins). Every change is audited as a log event
naming the admin and the account (`console.user_created`, `...disabled`, `...reset`,
`...role_changed`, `...linked`, `...unlinked`), written after the change committed; a
password or an authenticator secret is shown once, on the page that answers the change,
and never logged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.common.auth import Role
from services.common.logging import get_logger
from services.console.accounts import (
    AccountError,
    Enrolment,
    create_user,
    disable_user,
    link_identity,
    linked_identities,
    list_users,
    reset_user,
    set_role,
    unlink_identity,
)
from services.console.deps import ConsoleDeps
from services.console.http.pages import Viewer, check_csrf, field, redirect, render, viewer
from services.console.i18n import LANGUAGES
from services.console.permissions import may_manage_users

__all__ = ["users_router"]

log = get_logger(__name__)
Me = Annotated[Viewer, Depends(viewer)]
_ROLES = tuple(role.value for role in Role)


def users_router(deps: ConsoleDeps) -> APIRouter:
    """The users page and its four actions."""
    router = APIRouter(tags=["admin"])
    _list_route(router, deps)
    _create_route(router, deps)
    _disable_route(router, deps)
    _reset_route(router, deps)
    _role_route(router, deps)
    _link_routes(router, deps)
    return router


def _refused(request: Request) -> Response:
    return render(request, "error.html.j2", status_code=403, key="error.forbidden")


async def _users_page(
    request: Request,
    deps: ConsoleDeps,
    me: Viewer,
    *,
    error: str | AccountError | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    # A refusal is a locale key, or an AccountError naming its key and values.
    error_params = error.params if isinstance(error, AccountError) else {}
    error_key = error.code if isinstance(error, AccountError) else error
    async with deps.auth_sessions.begin() as session:
        users = await list_users(session)
        identities = await linked_identities(session)
    now = deps.clock()
    return render(
        request,
        "users.html.j2",
        status_code=status,
        users=users,
        roles=_ROLES,
        languages=LANGUAGES,
        locked={u.login for u in users if _later(u.locked_until, now)},
        done=request.query_params.get("done"),
        error=error_key,
        error_params=error_params,
        values=values or {"role": Role.CONTACT.value, "language": "en"},
        myself=me.session.login,
        # Linking is offered only where single sign-on is configured; subjects are by user.
        sso=deps.settings.console_oidc_issuer,
        sso_name=deps.settings.console_oidc_provider_name,
        identities={user_id: identity.subject for user_id, identity in identities.items()},
    )


def _later(moment: datetime | None, now: datetime) -> bool:
    # SQLite hands back naive datetimes; everything stored is UTC.
    if moment is None:
        return False
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) > now


def _enrolled(request: Request, enrolment: Enrolment, *, action: str) -> Response:
    """The one page that ever shows the password and the authenticator secret."""
    return render(request, "user_enrolled.html.j2", enrolment=enrolment, action=action)


def _list_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/admin/users", include_in_schema=False)
    async def users(request: Request, me: Me) -> Response:
        if not may_manage_users(me.session.role):
            return _refused(request)
        return await _users_page(request, deps, me)


def _create_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/admin/users", include_in_schema=False)
    async def create(request: Request, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        if not may_manage_users(me.session.role):
            return _refused(request)
        values = {k: field(form, k) for k in ("login", "name", "role", "subject", "language")}
        try:
            async with deps.auth_sessions.begin() as session:
                made = await create_user(
                    session, box=deps.box, login=values["login"], name=values["name"],
                    role=values["role"], subject=values["subject"] or None,
                    language=values["language"], now=deps.clock(),
                )  # fmt: skip
        except AccountError as exc:
            return await _users_page(request, deps, me, error=exc, values=values, status=422)
        except ValueError:  # Role(...) of a value no role has
            return await _users_page(
                request, deps, me, error="users.bad_role", values=values, status=422
            )
        log.info(
            "console.user_created",
            user_id=made.user.id,
            role=made.user.role.value,
            by=me.session.user_id,
        )
        return _enrolled(request, made, action="created")


def _disable_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/admin/users/{login}/disable", include_in_schema=False)
    async def disable(request: Request, login: str, me: Me) -> Response:
        await check_csrf(request, me.session.session_id)
        if not may_manage_users(me.session.role):
            return _refused(request)
        if login == me.session.login:
            # Another admin can; an admin who locks themselves out cannot undo it.
            return await _users_page(request, deps, me, error="users.not_yourself", status=409)
        try:
            async with deps.auth_sessions.begin() as session:
                user = await disable_user(session, login=login, now=deps.clock())
        except AccountError as exc:
            return await _users_page(request, deps, me, error=exc, status=404)
        log.info("console.user_disabled", user_id=user.id, by=me.session.user_id)
        return redirect("/admin/users?done=disabled")


def _reset_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/admin/users/{login}/reset", include_in_schema=False)
    async def reset(request: Request, login: str, me: Me) -> Response:
        await check_csrf(request, me.session.session_id)
        if not may_manage_users(me.session.role):
            return _refused(request)
        try:
            async with deps.auth_sessions.begin() as session:
                made = await reset_user(
                    session, box=deps.box, login=login, password=None, now=deps.clock()
                )
        except AccountError as exc:
            return await _users_page(request, deps, me, error=exc, status=404)
        log.info("console.user_reset", user_id=made.user.id, by=me.session.user_id)
        return _enrolled(request, made, action="reset")


def _role_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/admin/users/{login}/role", include_in_schema=False)
    async def change_role(request: Request, login: str, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        if not may_manage_users(me.session.role):
            return _refused(request)
        role = field(form, "role")
        if login == me.session.login:
            return await _users_page(request, deps, me, error="users.not_yourself", status=409)
        if role not in _ROLES:
            return await _users_page(request, deps, me, error="users.bad_role", status=422)
        try:
            async with deps.auth_sessions.begin() as session:
                user = await set_role(session, login=login, role=role, now=deps.clock())
        except AccountError as exc:
            return await _users_page(request, deps, me, error=exc, status=404)
        log.info(
            "console.user_role_changed",
            user_id=user.id,
            old_role=user.role.value,
            role=role,
            by=me.session.user_id,
        )
        return redirect("/admin/users?done=role")


def _link_routes(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/admin/users/{login}/link", include_in_schema=False)
    async def link(request: Request, login: str, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        issuer = deps.settings.console_oidc_issuer
        if not may_manage_users(me.session.role) or issuer is None:
            return _refused(request)
        try:
            async with deps.auth_sessions.begin() as session:
                user = await link_identity(
                    session, login=login, issuer=issuer, subject=field(form, "oidc_subject"),
                    now=deps.clock(),
                )  # fmt: skip
        except AccountError as exc:
            return await _users_page(request, deps, me, error=exc, status=422)
        log.info("console.user_linked", user_id=user.id, by=me.session.user_id)
        return redirect("/admin/users?done=linked")

    @router.post("/admin/users/{login}/unlink", include_in_schema=False)
    async def unlink(request: Request, login: str, me: Me) -> Response:
        await check_csrf(request, me.session.session_id)
        if not may_manage_users(me.session.role):
            return _refused(request)
        try:
            async with deps.auth_sessions.begin() as session:
                removed = await unlink_identity(session, login=login)
        except AccountError as exc:
            return await _users_page(request, deps, me, error=exc, status=404)
        if removed:
            log.info("console.user_unlinked", login=login, by=me.session.user_id)
        return redirect("/admin/users?done=unlinked")

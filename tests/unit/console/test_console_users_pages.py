"""Admin's users and roles pages: the console's own accounts, on its SQLite auth store.

Each test drives the pages as an admin (or another role) and checks the accounts through
the accounts module: who can sign in afterwards, with which role, and what was audited.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import structlog

from services.common.auth import Role
from services.console.accounts import (
    LockoutPolicy,
    SignInResult,
    create_user,
    find_user,
    resolve_session,
    sign_in,
    sign_in_with_identity,
)
from services.console.oidc import OidcIdentity
from tests.unit.console.pages_support import FakeServices, SignedIn, console_as

POLICY = LockoutPolicy(max_failures=5, first_lock_s=60, max_lock_s=600)


def _shown(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]+)<', page)
    assert found, element_id
    return found.group(1)


async def _sign_in(signed: SignedIn, login: str, password: str, secret: str) -> SignInResult:
    now = datetime.now(UTC)
    async with signed.deps.auth_sessions.begin() as session:
        return await sign_in(
            session, box=signed.deps.box, login=login, password=password,
            code=pyotp.TOTP(secret).at(now), now=now, ttl=timedelta(hours=1), policy=POLICY,
        )  # fmt: skip


async def test_admin_creates_an_account_that_signs_in_with_what_the_page_showed_once(
    make_settings: Callable[..., Any],
) -> None:
    async with console_as(make_settings, FakeServices(), role=Role.ADMIN) as signed:
        form = {
            "login": "ofc.ortiz", "name": "Ofc. L. Ortiz", "role": "liaison", "subject": "",
            "language": "es", "csrf": signed.csrf,
        }  # fmt: skip
        with structlog.testing.capture_logs() as logs:
            page = await signed.client.post("/admin/users", data=form)
        listed = await signed.client.get("/admin/users")
        password = _shown(page.text, "enrolled-password")
        secret = _shown(page.text, "enrolled-secret")
        result = await _sign_in(signed, "ofc.ortiz", password, secret)
        taken = await signed.client.post("/admin/users", data=form)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert result.session is not None
    assert (result.session.role, result.session.language) == (Role.LIAISON, "es")
    assert 'id="user-ofc.ortiz"' in listed.text
    assert password not in listed.text
    (created,) = [e for e in logs if e["event"] == "console.user_created"]
    assert (created["role"], created["by"]) == ("liaison", signed.session.user_id)
    assert password not in str(logs)
    assert secret not in str(logs)
    assert taken.status_code == 422
    assert "is taken" in taken.text


async def test_changing_a_role_ends_the_accounts_sessions_and_it_signs_in_with_the_new_one(
    make_settings: Callable[..., Any],
) -> None:
    async with console_as(make_settings, FakeServices(), role=Role.ADMIN) as signed:
        async with signed.deps.auth_sessions.begin() as session:
            made = await create_user(
                session, box=signed.deps.box, login="desk", name="Desk", role=Role.OPS,
                subject=None, now=datetime.now(UTC),
            )  # fmt: skip
        before = await _sign_in(signed, "desk", made.password, made.totp_secret)
        assert before.cookie is not None
        with structlog.testing.capture_logs() as logs:
            done = await signed.client.post(
                "/admin/users/desk/role", data={"role": "vetter", "csrf": signed.csrf}
            )
        async with signed.deps.auth_sessions.begin() as session:
            ended = await resolve_session(
                session, cookie=before.cookie, now=datetime.now(UTC), idle=timedelta(hours=1)
            )
            user = await find_user(session, login="desk")
        bad = await signed.client.post(
            "/admin/users/desk/role", data={"role": "superuser", "csrf": signed.csrf}
        )
    assert done.status_code == 303
    assert ended is None
    assert user is not None
    assert user.role is Role.VETTER
    (changed,) = [e for e in logs if e["event"] == "console.user_role_changed"]
    assert (changed["old_role"], changed["role"]) == ("ops", "vetter")
    assert bad.status_code == 422


async def test_disable_then_reset_gives_a_new_password_and_the_old_one_stops(
    make_settings: Callable[..., Any],
) -> None:
    async with console_as(make_settings, FakeServices(), role=Role.ADMIN) as signed:
        async with signed.deps.auth_sessions.begin() as session:
            made = await create_user(
                session, box=signed.deps.box, login="vetter-b", name="Lt. R. Daniels",
                role=Role.VETTER, subject=None, now=datetime.now(UTC),
            )  # fmt: skip
        disabled = await signed.client.post(
            "/admin/users/vetter-b/disable", data={"csrf": signed.csrf}
        )
        listed = await signed.client.get("/admin/users")
        refused = await _sign_in(signed, "vetter-b", made.password, made.totp_secret)
        reset = await signed.client.post("/admin/users/vetter-b/reset", data={"csrf": signed.csrf})
        password = _shown(reset.text, "enrolled-password")
        secret = _shown(reset.text, "enrolled-secret")
        old = await _sign_in(signed, "vetter-b", made.password, made.totp_secret)
        new = await _sign_in(signed, "vetter-b", password, secret)
    assert disabled.status_code == 303
    card = listed.text.split('id="user-vetter-b"', 1)[1].split("</li>")[0]
    assert "disabled" in card
    assert (refused.session, refused.reason) == (None, "disabled")
    assert reset.status_code == 200
    assert old.session is None
    assert new.session is not None


async def test_an_admin_cannot_disable_or_re_role_their_own_account(
    make_settings: Callable[..., Any],
) -> None:
    async with console_as(make_settings, FakeServices(), role=Role.ADMIN) as signed:
        disable = await signed.client.post(
            "/admin/users/person/disable", data={"csrf": signed.csrf}
        )
        role = await signed.client.post(
            "/admin/users/person/role", data={"role": "ops", "csrf": signed.csrf}
        )
        still = await signed.client.get("/admin/users")
    assert (disable.status_code, role.status_code) == (409, 409)
    assert 'id="users-error"' in disable.text
    assert still.status_code == 200  # still signed in, still an admin


async def test_other_roles_see_and_change_nothing(
    make_settings: Callable[..., Any],
) -> None:
    async with console_as(make_settings, FakeServices(), role=Role.OPS) as signed:
        page = await signed.client.get("/admin/users")
        create = await signed.client.post(
            "/admin/users",
            data={"login": "intruder", "name": "X", "role": "admin", "csrf": signed.csrf},
        )
        async with signed.deps.auth_sessions.begin() as session:
            intruder = await find_user(session, login="intruder")
    assert (page.status_code, create.status_code) == (403, 403)
    assert intruder is None


async def test_a_forged_form_creates_nothing(make_settings: Callable[..., Any]) -> None:
    async with console_as(make_settings, FakeServices(), role=Role.ADMIN) as signed:
        forged = await signed.client.post(
            "/admin/users",
            data={"login": "intruder", "name": "X", "role": "admin", "csrf": "forged"},
        )
        async with signed.deps.auth_sessions.begin() as session:
            intruder = await find_user(session, login="intruder")
    assert forged.status_code == 403
    assert intruder is None


async def test_a_refusal_reads_in_the_admins_language(make_settings: Callable[..., Any]) -> None:
    async with console_as(make_settings, FakeServices(), role=Role.ADMIN, language="es") as signed:
        form = {
            "login": "Not A Login!", "name": "X", "role": "liaison", "subject": "",
            "language": "es", "csrf": signed.csrf,
        }  # fmt: skip
        bad_login = await signed.client.post("/admin/users", data=form)
        unknown = await signed.client.post(
            "/admin/users/nobody.here/reset", data={"csrf": signed.csrf}
        )
    assert bad_login.status_code == 422
    assert "un usuario tiene de 2 a 80 caracteres" in _shown(bad_login.text, "users-error")
    assert unknown.status_code == 404
    assert "nobody.here" in _shown(unknown.text, "users-error")
    assert "no hay ningún usuario" in _shown(unknown.text, "users-error")


async def test_admin_links_and_unlinks_a_single_sign_on_identity(
    make_settings: Callable[..., Any],
) -> None:
    issuer = "https://idp.city.example"
    async with console_as(
        make_settings, FakeServices(), role=Role.ADMIN,
        console_oidc_issuer=issuer, console_oidc_provider_name="City ID",
    ) as signed:  # fmt: skip
        async with signed.deps.auth_sessions.begin() as session:
            made = await create_user(
                session, box=signed.deps.box, login="a.reyes", name="A. Reyes",
                role=Role.CONTACT, subject="p-1", now=datetime.now(UTC),
            )  # fmt: skip
        before = await signed.client.get("/admin/users")
        with structlog.testing.capture_logs() as logs:
            linked = await signed.client.post(
                "/admin/users/a.reyes/link", data={"csrf": signed.csrf, "oidc_subject": "sub-77"}
            )
        listed = await signed.client.get("/admin/users")
        identity = OidcIdentity(issuer=issuer, subject="sub-77")
        async with signed.deps.auth_sessions.begin() as session:
            opened = await sign_in_with_identity(
                session, identity=identity, now=datetime.now(UTC), ttl=timedelta(hours=1)
            )
        # The admin's own account cannot take the same subject: one person, one account.
        taken = await signed.client.post(
            f"/admin/users/{signed.session.login}/link",
            data={"csrf": signed.csrf, "oidc_subject": "sub-77"},
        )
        unlinked = await signed.client.post(
            "/admin/users/a.reyes/unlink", data={"csrf": signed.csrf}
        )
        async with signed.deps.auth_sessions.begin() as session:
            after = await sign_in_with_identity(
                session, identity=identity, now=datetime.now(UTC), ttl=timedelta(hours=1)
            )
        forged = await signed.client.post(
            "/admin/users/a.reyes/link", data={"csrf": "forged", "oidc_subject": "sub-78"}
        )
    assert "City ID" in _shown(before.text, "sso-a.reyes")
    assert linked.status_code == 303
    assert _shown(listed.text, "sso-a.reyes").strip().endswith(":")  # the subject in <code>
    assert "<code>sub-77</code>" in listed.text
    assert opened.session is not None
    assert opened.session.user_id == made.user.id
    assert taken.status_code == 422
    assert "another console user" in _shown(taken.text, "users-error")
    assert unlinked.status_code == 303
    assert after.session is None
    assert forged.status_code == 403
    (event,) = [e for e in logs if e["event"] == "console.user_linked"]
    assert event["by"] == signed.session.user_id
    assert "sub-77" not in str(logs)


async def test_without_single_sign_on_the_users_page_offers_no_linking(
    make_settings: Callable[..., Any],
) -> None:
    async with console_as(make_settings, FakeServices(), role=Role.ADMIN) as signed:
        async with signed.deps.auth_sessions.begin() as session:
            await create_user(
                session, box=signed.deps.box, login="a.reyes", name="A. Reyes",
                role=Role.CONTACT, subject="p-1", now=datetime.now(UTC),
            )  # fmt: skip
        page = await signed.client.get("/admin/users")
        refused = await signed.client.post(
            "/admin/users/a.reyes/link", data={"csrf": signed.csrf, "oidc_subject": "sub-77"}
        )
    assert 'id="sso-a.reyes"' not in page.text
    assert "/link" not in page.text
    assert refused.status_code == 403

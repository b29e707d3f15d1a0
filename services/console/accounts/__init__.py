"""Console accounts and sessions (local users: argon2 password plus a TOTP second factor)."""

from services.console.accounts.identities import (
    link_identity,
    linked_identities,
    linked_identity,
    sign_in_with_identity,
    unlink_identity,
)
from services.console.accounts.secrets import SecretBox
from services.console.accounts.sessions import (
    ConsoleSession,
    LockoutPolicy,
    SignInResult,
    resolve_session,
    revoke_session,
    revoke_user_sessions,
    sign_in,
    sweep_sessions,
)
from services.console.accounts.users import (
    AccountError,
    Enrolment,
    UserRecord,
    create_user,
    disable_user,
    find_user,
    list_users,
    reset_user,
    set_language,
    set_role,
)

__all__ = [
    "AccountError",
    "ConsoleSession",
    "Enrolment",
    "LockoutPolicy",
    "SecretBox",
    "SignInResult",
    "UserRecord",
    "create_user",
    "disable_user",
    "find_user",
    "link_identity",
    "linked_identities",
    "linked_identity",
    "list_users",
    "reset_user",
    "resolve_session",
    "revoke_session",
    "revoke_user_sessions",
    "set_language",
    "set_role",
    "sign_in",
    "sign_in_with_identity",
    "sweep_sessions",
    "unlink_identity",
]

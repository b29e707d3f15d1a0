"""What the console's pages receive: settings, the auth database, the services' APIs, a clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.console.accounts import LockoutPolicy, SecretBox
from services.console.api import ServiceApi
from services.console.config import ConsoleSettings
from services.console.oidc import OidcClient

__all__ = ["ConsoleDeps"]


@dataclass(frozen=True)
class ConsoleDeps:
    """Built once by the composition root (app.py)."""

    settings: ConsoleSettings
    auth_sessions: async_sessionmaker[AsyncSession]
    api: ServiceApi
    box: SecretBox
    clock: Callable[[], datetime]
    places: tuple[tuple[str, str], ...]  # (area code, name as said) for the report form
    oidc: OidcClient | None = None  # single sign-on, when an identity provider is configured

    @property
    def secret(self) -> str:
        """The console secret (CSRF tokens)."""
        return self.settings.console_secret.get_secret_value()

    @property
    def session_ttl(self) -> timedelta:
        """How long a session lasts after sign-in."""
        return timedelta(seconds=self.settings.console_session_ttl_s)

    @property
    def idle_timeout(self) -> timedelta:
        """How long an unused session lasts."""
        return timedelta(seconds=self.settings.console_idle_timeout_s)

    @property
    def lockout(self) -> LockoutPolicy:
        """Back-off and lock-out after failed sign-ins."""
        return LockoutPolicy(
            max_failures=self.settings.console_max_failed_sign_ins,
            first_lock_s=self.settings.console_lockout_s,
            max_lock_s=self.settings.console_lockout_max_s,
        )

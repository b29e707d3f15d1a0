"""Settings of the console (environment variables prefixed AVISO_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from services.common.settings import CommonSettings, is_development_secret, repo_root

__all__ = ["ConsoleSettings"]


class ConsoleSettings(CommonSettings):
    """Aviso console settings."""

    console_port: int = Field(default=8000, description="HTTP port of the console.")
    console_secret: SecretStr = Field(
        default=SecretStr("aviso-dev-console-secret-change-me"),
        description=(
            "Key of the console: signs CSRF tokens and seals users' TOTP secrets at rest "
            "(changing it invalidates every enrolled authenticator)."
        ),
    )
    console_cookie_secure: bool = Field(
        default=True,
        description="Mark the session cookie Secure (HTTPS only); turn off for local http only.",
    )
    console_session_ttl_s: float = Field(
        default=8 * 3600, gt=0, description="A console session ends this long after sign-in."
    )
    console_idle_timeout_s: float = Field(
        default=30 * 60, gt=0, description="A console session left unused this long ends."
    )
    console_max_failed_sign_ins: int = Field(
        default=5, ge=1, description="Failed sign-ins in a row before the account locks."
    )
    console_lockout_s: float = Field(
        default=60.0,
        gt=0,
        description="First lock-out; it doubles with every further failure (see the maximum).",
    )
    console_lockout_max_s: float = Field(
        default=3600.0, gt=0, description="Longest lock-out after repeated failures."
    )
    console_refresh_s: float = Field(
        default=15.0, gt=0, description="How often an open alert inbox asks for news."
    )
    console_intake_url: str = Field(
        default="http://127.0.0.1:8001", description="Base URL of intake's API."
    )
    console_router_url: str = Field(
        default="http://127.0.0.1:8002", description="Base URL of router's API."
    )
    console_rumor_control_url: str = Field(
        default="http://127.0.0.1:8003", description="Base URL of rumor_control's API."
    )
    console_api_timeout_s: float = Field(
        default=10.0, gt=0, description="Timeout of one call to a service's API."
    )
    console_gazetteer_file: Path | None = Field(
        default=None,
        description=(
            "The gazetteer whose places the rumor report form offers. "
            "Unset: the bundled services/rumor_control/gazetteer.yaml."
        ),
    )

    console_oidc_issuer: str | None = Field(
        default=None,
        description=(
            "Issuer URL of the department's OpenID Provider for single sign-on (its discovery "
            "document is ISSUER/.well-known/openid-configuration). Unset: local accounts only."
        ),
    )
    console_oidc_client_id: str = Field(
        default="aviso-console", description="The console's client id at the OpenID Provider."
    )
    console_oidc_client_secret: SecretStr = Field(
        default=SecretStr("aviso-dev-oidc-client-secret-change-me"),
        description=(
            "The console's client secret at the OpenID Provider (refused at its development "
            "value outside development mode while an issuer is set)."
        ),
    )
    console_oidc_provider_name: str = Field(
        default="single sign-on",
        description='Shown on the sign-in page as "Sign in with NAME".',
    )

    def development_secrets(self) -> list[str]:
        """The common ones, and the OpenID client secret while single sign-on is on."""
        found = super().development_secrets()
        if self.console_oidc_issuer and is_development_secret(self.console_oidc_client_secret):
            found.append("AVISO_CONSOLE_OIDC_CLIENT_SECRET")
        return found

    def gazetteer_file(self) -> Path:
        """The configured gazetteer, or the one bundled with rumor_control."""
        if self.console_gazetteer_file is not None:
            return self.console_gazetteer_file
        return repo_root() / "services" / "rumor_control" / "gazetteer.yaml"

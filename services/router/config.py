"""Settings of the router service (environment variables prefixed AVISO_)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings

__all__ = ["RouterSettings"]


class RouterSettings(CommonSettings):
    """Aviso router settings."""

    router_port: int = Field(default=8002, description="HTTP port of the router service.")

"""Settings of the rumor_control service (environment variables prefixed AVISO_)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings

__all__ = ["RumorControlSettings"]


class RumorControlSettings(CommonSettings):
    """Aviso rumor control settings."""

    rumor_control_port: int = Field(
        default=8003, description="HTTP port of the rumor_control service."
    )

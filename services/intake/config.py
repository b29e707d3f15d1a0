"""Settings of the intake service (environment variables prefixed AVISO_)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings

__all__ = ["IntakeSettings"]


class IntakeSettings(CommonSettings):
    """Aviso intake settings."""

    intake_port: int = Field(default=8001, description="HTTP port of the intake service.")

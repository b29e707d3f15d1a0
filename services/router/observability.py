"""The fields every router log line about an alert carries: ids and states only.

Never names, addresses or notice text: those are restricted or free text.
"""

from __future__ import annotations

from typing import Any

from services.router.domain import AlertRecord

__all__ = ["alert_fields", "drill_label"]


def alert_fields(alert: AlertRecord, **extra: Any) -> dict[str, Any]:
    """Log fields of `alert` (plus `extra`)."""
    return {
        "alert_id": str(alert.id),
        "notice_id": str(alert.notice_id),
        "notice_version": alert.notice_version,
        "drill": alert.drill,
        **extra,
    }


def drill_label(alert: AlertRecord) -> str:
    """The `drill` metric label: "true" or "false"."""
    return str(alert.drill).lower()

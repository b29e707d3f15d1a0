"""Alerting: open, re-open and cancel a notice's alert, notify its people, read alerts."""

from __future__ import annotations

from services.router.alerting.notices import (
    cancel_alert,
    open_alert,
    open_alert_claiming,
    open_alerts,
    open_alerts_claiming,
    reopen_alert,
)
from services.router.alerting.notify import Purpose, notify
from services.router.alerting.queries import alert_timeline, get_alert, list_alerts, require_alert

__all__ = [
    "Purpose",
    "alert_timeline",
    "cancel_alert",
    "get_alert",
    "list_alerts",
    "notify",
    "open_alert",
    "open_alert_claiming",
    "open_alerts",
    "open_alerts_claiming",
    "reopen_alert",
    "require_alert",
]

"""What router's use cases refuse with; the HTTP edge maps each to a problem response."""

from __future__ import annotations

import uuid

__all__ = [
    "AlertClosed",
    "AlertNotFound",
    "DirectoryConflict",
    "LinkRejected",
    "NoDirectory",
    "NotARecipient",
    "StaleVersion",
    "TimerFailed",
    "UnknownVersion",
]


class NoDirectory(RuntimeError):
    """No directory is configured: nobody can be alerted (the message is retried, then DLQ)."""


class AlertNotFound(LookupError):
    """No alert with that id."""


class NotARecipient(PermissionError):
    """The caller is not among the people this alert may reach."""


class StaleVersion(Exception):
    """The caller acknowledged a version the field office has since updated."""

    def __init__(self, *, current_version: int, alert_id: uuid.UUID, notice_id: uuid.UUID) -> None:
        super().__init__(f"notice is at version {current_version}")
        self.current_version = current_version
        self.alert_id = alert_id
        self.notice_id = notice_id


class UnknownVersion(Exception):
    """The caller named a version router has not seen (yet)."""

    def __init__(self, *, current_version: int) -> None:
        super().__init__(f"notice is at version {current_version}")
        self.current_version = current_version


class AlertClosed(Exception):
    """The alert was resolved before anyone acknowledged it."""

    def __init__(self, *, resolution: str | None) -> None:
        super().__init__(resolution or "resolved")
        self.resolution = resolution


class DirectoryConflict(Exception):
    """The directory changed since the caller read it (or a concurrent write won)."""

    def __init__(self, *, current_version: int) -> None:
        super().__init__(f"directory is at version {current_version}")
        self.current_version = current_version


class TimerFailed(Exception):
    """Firing one alert's timer failed; the worker skips that alert for this round."""

    def __init__(self, alert_id: uuid.UUID) -> None:
        super().__init__(str(alert_id))
        self.alert_id = alert_id


class LinkRejected(Exception):
    """A one-click link that must not be honoured (expired, tampered, wrong alert)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

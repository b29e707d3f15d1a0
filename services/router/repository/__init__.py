"""Router's persistence over its tables; each repository works in the caller's transaction."""

from __future__ import annotations

from services.router.repository.alerts import DeliveryIntake, SqlAlertRepository
from services.router.repository.deliveries import SqlDeliveryRepository
from services.router.repository.directory import SqlDirectoryRepository

__all__ = [
    "DeliveryIntake",
    "SqlAlertRepository",
    "SqlDeliveryRepository",
    "SqlDirectoryRepository",
]

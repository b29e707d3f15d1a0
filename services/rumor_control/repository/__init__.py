"""Persistence of rumor_control, one repository per aggregate over the caller's session.

Repositories never commit: the unit of work does. Ids are stored as strings (36
characters) so SQLite and PostgreSQL read them alike, and SQLite's naive datetimes are read
back as UTC. Row types live in `domain.records` and are re-exported here.
"""

from services.rumor_control.domain.records import (
    AuditEntry,
    BulletinRow,
    DeliveryRow,
    NoticeRow,
    ReceiptRow,
    ReportRow,
    RumorRow,
    VersionRow,
)
from services.rumor_control.repository._sql import aware
from services.rumor_control.repository.bulletins import SqlBulletins
from services.rumor_control.repository.deliveries import SqlDeliveries
from services.rumor_control.repository.notices import SqlNotices
from services.rumor_control.repository.rumors import SqlRumors
from services.rumor_control.repository.timeline import SqlTimeline

__all__ = [
    "AuditEntry",
    "BulletinRow",
    "DeliveryRow",
    "NoticeRow",
    "ReceiptRow",
    "ReportRow",
    "RumorRow",
    "SqlBulletins",
    "SqlDeliveries",
    "SqlNotices",
    "SqlRumors",
    "SqlTimeline",
    "VersionRow",
    "aware",
]

"""Tables owned by the router service (its own PostgreSQL schema, or var/router.db).

Migration `router_0002` creates these tables with the same columns written out (a
migration must stay as it was written, whatever this module becomes); `router_0003`
adds the delivery engine's `delivery_records` and drops `alert_deliveries`; `router_0007`
drops `ix_alerts_state` and keys the expiry index on `resolved_at`; `router_0008` adds
the alert list's `ix_alerts_listed`; `router_0009` keeps the delivery records' indexes
over records in flight (and pending) only.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from services.common.delivery import delivery_records_table

__all__ = ["alert_timeline", "alerts", "delivery_records", "directory_versions", "metadata"]

metadata = sa.MetaData()

# BIGINT on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Time = sa.DateTime(timezone=True)


def _directory_versions_columns() -> list[sa.Column[Any]]:
    """Every directory ever in force; the highest version is the current one."""
    return [
        # Assigned as max + 1 by the writer: two concurrent writers collide on the key
        # instead of both believing they wrote the current directory.
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        # api | file | cli: a file is re-applied only when it changed since it was loaded.
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", _Time, nullable=False),
    ]


def _alerts_columns() -> list[sa.Column[Any]]:
    """One alert per notice, with its frozen snapshot and its escalation timer."""
    return [
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("notice_id", sa.String(36), nullable=False),
        sa.Column("notice_version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("urgency", sa.String(8), nullable=False),
        # Releasable content only (summary, area, window, annotations): what messages say.
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("snapshot", sa.JSON, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("repeat", sa.Integer, nullable=False),
        sa.Column("escalation_count", sa.Integer, nullable=False),
        # The durable timer: due when next_fire_at <= now. Fired only by whoever holds
        # the row and still sees this active_escalation_id (a stale or duplicate run
        # finds another id, or none, and does nothing).
        sa.Column("next_fire_at", _Time, nullable=True),
        sa.Column("active_escalation_id", sa.String(36), nullable=True),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("triggered_at", _Time, nullable=False),
        sa.Column("version_triggered_at", _Time, nullable=False),
        sa.Column("acknowledged_version", sa.Integer, nullable=True),
        sa.Column("acknowledged_by", sa.String(36), nullable=True),
        sa.Column("acknowledged_at", _Time, nullable=True),
        sa.Column("ack_method", sa.String(8), nullable=True),
        sa.Column("exhausted_at", _Time, nullable=True),
        sa.Column("expires_at", _Time, nullable=False),
        sa.Column("resolved_at", _Time, nullable=True),
        sa.Column("resolution", sa.String(32), nullable=True),
        sa.Column("updated_at", _Time, nullable=False),
    ]


def _timeline_columns() -> list[sa.Column[Any]]:
    """Append-only log of everything that happened to an alert."""
    return [
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("at", _Time, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("notice_version", sa.Integer, nullable=False),
        sa.Column("step", sa.Integer, nullable=True),
        sa.Column("repeat", sa.Integer, nullable=True),
        sa.Column("recipient_id", sa.String(36), nullable=True),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("method", sa.String(16), nullable=True),
        sa.Column("delivery_id", sa.String(36), nullable=True),
        sa.Column("detail", sa.JSON, nullable=True),
    ]


directory_versions = sa.Table("directory_versions", metadata, *_directory_versions_columns())
alerts = sa.Table(
    "alerts",
    metadata,
    *_alerts_columns(),
    sa.UniqueConstraint("notice_id", name="uq_alerts_notice_id"),
)
sa.Index("ix_alerts_next_fire_at", alerts.c.next_fire_at)
# Timers: next_fire_at is NULL unless an escalation is pending, so the plain index above
# only ever ranges over open alerts. Expiry: only unresolved alerts, hence partial, on
# `resolved_at` (set exactly when an alert is resolved) rather than on `state`: no index
# names `state` (router_0007), so a notice's triggered -> delivered, which sets only
# `state` and `updated_at`, is a HOT update that writes no index entry.
sa.Index(
    "ix_alerts_unresolved_expiry",
    alerts.c.expires_at,
    postgresql_where=alerts.c.resolved_at.is_(None),
    sqlite_where=alerts.c.resolved_at.is_(None),
)
# The alert list's order, newest first (router_0008): a page is the first entries whose
# rows pass its filter, with no sort of every alert. Neither key changes after the insert,
# so the triggered -> delivered update stays HOT.
sa.Index("ix_alerts_listed", alerts.c.triggered_at.desc(), alerts.c.id)
# Three rows of ~2 kB a page at most (router_0007): the room a HOT update needs to put
# the row's new version on its own page.
alerts.dialect_kwargs["postgresql_with"] = {"fillfactor": 70}
alert_timeline = sa.Table("alert_timeline", metadata, *_timeline_columns())
sa.Index("ix_alert_timeline_alert_id", alert_timeline.c.alert_id, alert_timeline.c.id)
# The delivery engine's durable queue and record of every notification (router_0003).
# Router reads an alert's records only to cancel its pending ones: its aggregate index
# holds pending records only (router_0009), as the claim's indexes hold records in flight.
delivery_records = delivery_records_table(metadata, pending_aggregate=True)
# A fifth of each page kept free (router_0006): an update soon after the insert (the
# engine's outcome, a renewed lease) lands on the row's own page, where its WAL record
# holds the changed bytes and not the whole row (`context`, ~1.2 kB, precedes every
# column an update changes), and an update of no indexed column can be HOT.
delivery_records.dialect_kwargs["postgresql_with"] = {"fillfactor": 80}

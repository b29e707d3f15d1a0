"""router: directory versions, alerts with durable escalation timers, timeline, deliveries.

Revision ID: router_0002
Revises: router_0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "router_0002"
down_revision: str | None = "router_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, *, nullable: bool) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "directory_versions",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        _time("created_at", nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("notice_id", sa.String(36), nullable=False),
        sa.Column("notice_version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("urgency", sa.String(8), nullable=False),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("snapshot", sa.JSON, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("repeat", sa.Integer, nullable=False),
        sa.Column("escalation_count", sa.Integer, nullable=False),
        _time("next_fire_at", nullable=True),
        sa.Column("active_escalation_id", sa.String(36), nullable=True),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        _time("triggered_at", nullable=False),
        _time("version_triggered_at", nullable=False),
        sa.Column("acknowledged_version", sa.Integer, nullable=True),
        sa.Column("acknowledged_by", sa.String(36), nullable=True),
        _time("acknowledged_at", nullable=True),
        sa.Column("ack_method", sa.String(8), nullable=True),
        _time("exhausted_at", nullable=True),
        _time("expires_at", nullable=False),
        _time("resolved_at", nullable=True),
        sa.Column("resolution", sa.String(32), nullable=True),
        _time("updated_at", nullable=False),
        sa.UniqueConstraint("notice_id", name="uq_alerts_notice_id"),
    )
    op.create_index("ix_alerts_next_fire_at", "alerts", ["next_fire_at"])
    op.create_index("ix_alerts_state", "alerts", ["state"])
    # Only unresolved alerts can expire; resolved ones pile up and must not be scanned.
    unresolved = sa.text("state <> 'resolved'")
    op.create_index(
        "ix_alerts_unresolved_expiry",
        "alerts",
        ["expires_at"],
        postgresql_where=unresolved,
        sqlite_where=unresolved,
    )
    op.create_table(
        "alert_timeline",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(36), nullable=False),
        _time("at", nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("notice_version", sa.Integer, nullable=False),
        sa.Column("step", sa.Integer, nullable=True),
        sa.Column("repeat", sa.Integer, nullable=True),
        sa.Column("recipient_id", sa.String(36), nullable=True),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("method", sa.String(16), nullable=True),
        sa.Column("delivery_id", sa.String(36), nullable=True),
        sa.Column("detail", sa.JSON, nullable=True),
    )
    op.create_index("ix_alert_timeline_alert_id", "alert_timeline", ["alert_id", "id"])
    op.create_table(
        "alert_deliveries",
        sa.Column("delivery_id", sa.String(36), primary_key=True),
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("notice_version", sa.Integer, nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("recipient_id", sa.String(36), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.String(200), nullable=True),
        _time("at", nullable=False),
    )
    op.create_index("ix_alert_deliveries_alert_id", "alert_deliveries", ["alert_id"])


def downgrade() -> None:
    op.drop_table("alert_deliveries")
    op.drop_table("alert_timeline")
    op.drop_table("alerts")
    op.drop_table("directory_versions")

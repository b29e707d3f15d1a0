"""router: the delivery engine's records replace alert_deliveries.

The delivery request no longer travels over Kafka: router accepts each notification into
its own `delivery_records` (the engine's durable queue, with state, attempts, retry timer
and lease) in the transaction that decides it. Those records are also the idempotency
record of each delivery id, so `alert_deliveries` goes.

Revision ID: router_0003
Revises: router_0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.delivery import create_delivery_records_table

revision: str = "router_0003"
down_revision: str | None = "router_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_delivery_records_table(op)
    op.drop_index("ix_alert_deliveries_alert_id", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")


def downgrade() -> None:
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
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_alert_deliveries_alert_id", "alert_deliveries", ["alert_id"])
    op.drop_table("delivery_records")

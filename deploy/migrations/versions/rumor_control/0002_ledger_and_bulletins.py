"""rumor_control: rumor ledger, bulletins and their versions, timeline, deliveries, receipts.

Revision ID: rumor_control_0002
Revises: rumor_control_0001
Create Date: 2026-11-25

Explicit tables (not imported from services.rumor_control.tables): a migration is frozen at
the schema it creates, whatever the models become later.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "rumor_control_0002"
down_revision: str | None = "rumor_control_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(36)
WHEN = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("notice_id", ID, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("area", sa.String(200), nullable=True),
        sa.Column("area_code", sa.String(64), nullable=True),
        sa.Column("window_start", WHEN, nullable=True),
        sa.Column("window_end", WHEN, nullable=True),
        sa.Column("cancelled_at", WHEN, nullable=True),
        sa.Column("fingerprints", sa.JSON, nullable=False),
        sa.Column("fingerprint_key_ids", sa.JSON, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_table(
        "standby_requests",
        sa.Column("notice_id", ID, primary_key=True),
        sa.Column("alert_id", ID, nullable=False),
        sa.Column("acknowledged_by", ID, nullable=False),
        sa.Column("requested_at", WHEN, nullable=False),
    )
    op.create_table(
        "rumors",
        sa.Column("rumor_id", ID, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("area_code", sa.String(64), nullable=True),
        sa.Column("area", sa.String(200), nullable=True),
        sa.Column("place_key", sa.String(200), nullable=True),
        sa.Column("report_count", sa.Integer, nullable=False),
        sa.Column("channels", sa.JSON, nullable=False),
        sa.Column("first_reported_at", WHEN, nullable=False),
        sa.Column("last_reported_at", WHEN, nullable=False),
        sa.Column("first_observed_at", WHEN, nullable=False),
        sa.Column("last_observed_at", WHEN, nullable=False),
        sa.Column("assessment", sa.String(32), nullable=True),
        sa.Column("assessment_revision", sa.Integer, nullable=False),
        sa.Column("as_of", WHEN, nullable=True),
        sa.Column("expires_at", WHEN, nullable=True),
        sa.Column("assessed_by", ID, nullable=True),
        sa.Column("assessed_by_name", sa.String(200), nullable=True),
        sa.Column("linked_notice_ids", sa.JSON, nullable=False),
    )
    op.create_table(
        "rumor_reports",
        sa.Column("report_id", ID, primary_key=True),
        sa.Column("rumor_id", ID, sa.ForeignKey("rumors.rumor_id"), nullable=False),
        sa.Column("claim", sa.Text, nullable=False),
        sa.Column("place_as_heard", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=True),
        sa.Column("language", sa.String(8), nullable=True),
        sa.Column("reporter_id", ID, nullable=False),
        sa.Column("reporter_name", sa.String(200), nullable=False),
        sa.Column("observed_at", WHEN, nullable=True),
        sa.Column("reported_at", WHEN, nullable=False),
    )
    op.create_table(
        "bulletins",
        sa.Column("bulletin_id", ID, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("current_version", sa.Integer, nullable=False),
        sa.Column("template_id", sa.String(64), nullable=False),
        sa.Column("rumor_id", ID, nullable=True),
        sa.Column("notice_ids", sa.JSON, nullable=False),
        sa.Column("area_code", sa.String(64), nullable=True),
        sa.Column("standby_for_notice", ID, nullable=True, unique=True),
        sa.Column("first_reported_at", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_table(
        "bulletin_versions",
        sa.Column("bulletin_id", ID, sa.ForeignKey("bulletins.bulletin_id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("msg_type", sa.String(8), nullable=False),
        sa.Column("refs", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("texts", sa.JSON, nullable=False),
        sa.Column("findings", sa.JSON, nullable=False),
        sa.Column("blocked_reasons", sa.JSON, nullable=False),
        sa.Column("channels", sa.JSON, nullable=False),
        sa.Column("signoffs", sa.JSON, nullable=False),
        sa.Column("author_id", ID, nullable=True),
        sa.Column("author_name", sa.String(200), nullable=True),
        sa.Column("drafted_at", WHEN, nullable=False),
        sa.Column("approved_by", ID, nullable=True),
        sa.Column("approved_at", WHEN, nullable=True),
        sa.Column("published_at", WHEN, nullable=True),
        sa.Column("expires_at", WHEN, nullable=True),
        sa.Column("rejected_by", ID, nullable=True),
        sa.Column("rejected_at", WHEN, nullable=True),
        sa.Column("reason_codes", sa.JSON, nullable=False),
        sa.Column("vetter_comment", sa.Text, nullable=True),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("aggregate", sa.String(16), nullable=False),
        sa.Column("aggregate_id", ID, nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("actor_id", ID, nullable=True),
        sa.Column("actor_name", sa.String(200), nullable=True),
        sa.Column("actor_role", sa.String(32), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", ID, primary_key=True),
        sa.Column("bulletin_id", ID, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("recipient_id", ID, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.String(200), nullable=True),
        sa.Column("attempted_at", WHEN, nullable=False),
    )
    op.create_table(
        "receipts",
        sa.Column("bulletin_id", ID, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("recipient_id", ID, primary_key=True),
        sa.Column("first_seen_at", WHEN, nullable=False),
        sa.Column("last_seen_at", WHEN, nullable=False),
        sa.Column("seen_count", sa.Integer, nullable=False),
    )
    op.create_index("ix_rumors_cluster", "rumors", ["status", "area_code", "last_observed_at"])
    op.create_index("ix_rumor_reports_rumor", "rumor_reports", ["rumor_id"])
    op.create_index("ix_audit_log_aggregate", "audit_log", ["aggregate", "aggregate_id", "id"])
    op.create_index("ix_deliveries_bulletin", "deliveries", ["bulletin_id", "version"])


def downgrade() -> None:
    for index, table in (
        ("ix_deliveries_bulletin", "deliveries"),
        ("ix_audit_log_aggregate", "audit_log"),
        ("ix_rumor_reports_rumor", "rumor_reports"),
        ("ix_rumors_cluster", "rumors"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "receipts",
        "deliveries",
        "audit_log",
        "bulletin_versions",
        "bulletins",
        "rumor_reports",
        "rumors",
        "standby_requests",
        "notices",
    ):
        op.drop_table(table)

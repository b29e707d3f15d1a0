"""rumor_control: delivery records keep the SMS gateway's delivery report.

Revision ID: rumor_control_0006
Revises: rumor_control_0005
Create Date: 2026-12-12

The delivery engine's table, version 2 -> 3: nullable `report` (accepted, delivered,
failed) and `reported_at`. Records without a report (and every non-SMS record) keep NULL.
"""

from collections.abc import Sequence

from alembic import op

from services.common.delivery import add_delivery_report_columns, drop_delivery_report_columns

revision: str = "rumor_control_0006"
down_revision: str | None = "rumor_control_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_delivery_report_columns(op)


def downgrade() -> None:
    drop_delivery_report_columns(op)

"""rumor_control: outbox and inbox tables.

Revision ID: rumor_control_0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

from services.common.messaging import create_messaging_tables

revision: str = "rumor_control_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_messaging_tables(op)


def downgrade() -> None:
    op.drop_table("inbox_messages")
    op.drop_table("outbox_messages")

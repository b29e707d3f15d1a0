"""rumor_control: community subscribers by SMS (numbers sealed, found by a keyed hash).

Revision ID: rumor_control_0007
Revises: rumor_control_0006
Create Date: 2026-12-12
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "rumor_control_0007"
down_revision: str | None = "rumor_control_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "sms_subscribers",
        sa.Column("subscriber_id", sa.String(36), primary_key=True),
        sa.Column("number_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("number_sealed", sa.Text, nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        sa.Column("confirmed_at", when, nullable=True),
    )
    op.create_index("ix_sms_subscribers_state", "sms_subscribers", ["state"])


def downgrade() -> None:
    op.drop_index("ix_sms_subscribers_state", table_name="sms_subscribers")
    op.drop_table("sms_subscribers")

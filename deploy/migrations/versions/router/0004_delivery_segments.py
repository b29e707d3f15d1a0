"""router: delivery records keep the SMS gateway's receipt (segments of a delivered text).

Revision ID: router_0004
Revises: router_0003
Create Date: 2026-12-03

The delivery engine's table, version 1 -> 2: a nullable `segments` column. Records
delivered before this revision (and every non-SMS record) keep NULL.
"""

from collections.abc import Sequence

from alembic import op

from services.common.delivery import add_delivery_segments_column, drop_delivery_segments_column

revision: str = "router_0004"
down_revision: str | None = "router_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_delivery_segments_column(op)


def downgrade() -> None:
    drop_delivery_segments_column(op)

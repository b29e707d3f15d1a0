"""rumor_control: one live bulletin per rumor (superseded), flags for vetters.

Revision ID: rumor_control_0005
Revises: rumor_control_0003
Create Date: 2026-12-09

`bulletins.superseded_by` names the bulletin of the same rumor that replaced one (state
`superseded`); `bulletins.flags` holds the reason codes a vetter should look at (a cancelled
notice). The new states (`superseded`, `withdrawn`) fit the existing string columns. An
index on (rumor_id, state) finds a rumor's live bulletin and its pending drafts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "rumor_control_0005"
down_revision: str | None = "rumor_control_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bulletins") as batch:
        batch.add_column(sa.Column("superseded_by", sa.String(36), nullable=True))
        batch.add_column(
            sa.Column("flags", sa.JSON, nullable=False, server_default=sa.text("'[]'"))
        )
    op.create_index("ix_bulletins_rumor", "bulletins", ["rumor_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_bulletins_rumor", table_name="bulletins")
    # Before this revision a superseded bulletin stayed published, a withdrawn draft drafted.
    op.execute("UPDATE bulletins SET state = 'published' WHERE state = 'superseded'")
    op.execute("UPDATE bulletins SET state = 'drafted' WHERE state = 'withdrawn'")
    op.execute("UPDATE bulletin_versions SET state = 'drafted' WHERE state = 'withdrawn'")
    with op.batch_alter_table("bulletins") as batch:
        batch.drop_column("flags")
        batch.drop_column("superseded_by")

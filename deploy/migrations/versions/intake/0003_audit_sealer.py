"""intake: audit entries wait in audit_pending for the sealer; the chain becomes keyed.

Requests used to lock the chain's head row to append: one writer at a time. Now they
insert into audit_pending and a sealer chains entries into audit_log in batches with
an HMAC. Entries sealed before this revision keep their plain SHA-256 links:
`audit_chain_head.unkeyed_seq` records how many there are.

Revision ID: intake_0003
Revises: intake_0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_0003"
down_revision: str | None = "intake_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_pending",
        sa.Column("id", _BigId, nullable=False, autoincrement=True),
        sa.Column("entry_id", sa.String(36), nullable=False),
        sa.Column("occurred_at", _Time, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("notice_id", sa.String(36), nullable=True),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("actor_token_id", sa.String(36), nullable=True),
        sa.Column("actor_role", sa.String(32), nullable=True),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_pending"),
    )
    with op.batch_alter_table("audit_chain_head") as batch:
        batch.add_column(sa.Column("unkeyed_seq", _BigId, nullable=False, server_default="0"))
    # Every entry sealed so far was hashed without a key.
    op.execute("UPDATE audit_chain_head SET unkeyed_seq = seq")


def downgrade() -> None:
    with op.batch_alter_table("audit_chain_head") as batch:
        batch.drop_column("unkeyed_seq")
    op.drop_table("audit_pending")

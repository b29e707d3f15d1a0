"""auth: console_identities, the single sign-on identity an admin linked to a console account.

Revision ID: auth_0004
Revises: auth_0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "auth_0004"
down_revision: str | None = "auth_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create console_identities: (issuer, subject) -> one console user."""
    op.create_table(
        "console_identities",
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("issuer", sa.String(300), nullable=False),
        sa.Column("oidc_subject", sa.String(255), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_console_identities"),
        sa.UniqueConstraint("issuer", "oidc_subject", name="uq_console_identities_issuer"),
    )


def downgrade() -> None:
    """Drop console_identities."""
    op.drop_table("console_identities")

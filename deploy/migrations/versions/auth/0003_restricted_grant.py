"""auth: api_tokens.restricted_grant, the admin's explicit grant to read restricted detail.

A contact token reads restricted detail when its subject is a person in the directory in
force, or when an admin issued it with this grant (`aviso tokens issue --grant-restricted`).
Null (every token issued before) means no grant.

Revision ID: auth_0003
Revises: auth_0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "auth_0003"
down_revision: str | None = "auth_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add api_tokens.restricted_grant (nullable: no grant)."""
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("restricted_grant", sa.Boolean(), nullable=True))


def downgrade() -> None:
    """Drop api_tokens.restricted_grant."""
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("restricted_grant")

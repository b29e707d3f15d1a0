"""intake: directory_people, who is in the directory in force (ids only, from router).

A contact reads restricted detail only when its subject is one of these people (or its
token carries the admin's explicit grant). Router announces each directory version on
`aviso.directory.v1`; intake keeps the newest.

Revision ID: intake_0004
Revises: intake_0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_0004"
down_revision: str | None = "intake_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "directory_people",
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("person_id", sa.String(36), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", "person_id", name="pk_directory_people"),
    )
    op.create_index("ix_directory_people_person_id", "directory_people", ["person_id"])


def downgrade() -> None:
    op.drop_index("ix_directory_people_person_id", table_name="directory_people")
    op.drop_table("directory_people")

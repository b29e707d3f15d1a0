"""router: the outbox's message id is no longer unique (an index nothing reads).

Revision ID: router_0006
Revises: router_0005
Create Date: 2026-11-29

Every outbox row wrote an entry into it twice (its insert and its relay's non-HOT
update), and no statement looks a row up by it: the message id is a fresh uuid4 per
event, deduplicated by the consumers' inboxes (docs/performance.md, "What PostgreSQL
writes per notice").
"""

from collections.abc import Sequence

from alembic import op

from services.common.messaging import (
    drop_outbox_message_id_unique,
    restore_outbox_message_id_unique,
)

revision: str = "router_0006"
down_revision: str | None = "router_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    drop_outbox_message_id_unique(op)


def downgrade() -> None:
    restore_outbox_message_id_unique(op)

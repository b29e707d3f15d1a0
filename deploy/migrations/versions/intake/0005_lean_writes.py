"""intake: indexes nothing reads are dropped (the outbox's message id, the audit log's notice).

Revision ID: intake_0005
Revises: intake_0004
Create Date: 2026-11-29

Every submission wrote an entry into both, and no statement of the services, the CLI or
the console looks a row up by either (docs/performance.md, "What PostgreSQL writes per
notice"): the outbox's `message_id` is a fresh uuid4 per event, deduplicated by the
consumers' inboxes; the audit log is read in `seq` order by its verifier only.
"""

from collections.abc import Sequence

from alembic import op

from services.common.messaging import (
    drop_outbox_message_id_unique,
    restore_outbox_message_id_unique,
)

revision: str = "intake_0005"
down_revision: str | None = "intake_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    drop_outbox_message_id_unique(op)
    op.drop_index("ix_audit_log_notice_id", table_name="audit_log")


def downgrade() -> None:
    op.create_index("ix_audit_log_notice_id", "audit_log", ["notice_id"])
    restore_outbox_message_id_unique(op)

"""intake: less written per notice: two indexes nothing reads, room for same-page updates.

Revision ID: intake_0005
Revises: intake_0004
Create Date: 2026-11-29

Measured in docs/performance.md, "What PostgreSQL writes per notice (eleventh round)":

- The outbox's unique index on `message_id` goes: a fresh uuid4 per event that no
  statement looks up or upserts on (consumers deduplicate on it in their own inboxes).
  Each row wrote two random B-tree entries into it (its insert and its relay's non-HOT
  update), the kind that costs a durable server a full-page image after a checkpoint.
- `ix_audit_log_notice_id` goes: the audit log is read in `seq` order by its verifier
  only, and each sealed entry wrote one more index entry.
- The outbox keeps 20 % of each page free (fillfactor 80, PostgreSQL): the relay's update
  of a row just written then lands on the same page, where the WAL record carries the
  changed bytes rather than the whole new row.
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
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE outbox_messages SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE outbox_messages RESET (fillfactor)")
    op.create_index("ix_audit_log_notice_id", "audit_log", ["notice_id"])
    restore_outbox_message_id_unique(op)

"""rumor_control: less written per notice: an index nothing reads, room for same-page updates.

Revision ID: rumor_control_0008
Revises: rumor_control_0007
Create Date: 2026-11-29

Measured in docs/performance.md, "What PostgreSQL writes per notice (eleventh round)":

- The outbox's unique index on `message_id` goes: a fresh uuid4 per event that no
  statement looks up or upserts on (consumers deduplicate on it in their own inboxes).
  Each row wrote two random B-tree entries into it (its insert and its relay's non-HOT
  update), the kind that costs a durable server a full-page image after a checkpoint.
- The outbox and the delivery records keep 20 % of each page free (fillfactor 80,
  PostgreSQL): a row's update soon after its insert (the relay's, the engine's outcome,
  a lease renewed) then lands on the same page, where the WAL record carries the changed
  bytes rather than the whole new row (a delivery's 1.2 kB `context` comes before every
  column an update changes), and an update of no indexed column can be HOT.
"""

from collections.abc import Sequence

from alembic import op

from services.common.messaging import (
    drop_outbox_message_id_unique,
    restore_outbox_message_id_unique,
)

revision: str = "rumor_control_0008"
down_revision: str | None = "rumor_control_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    drop_outbox_message_id_unique(op)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE outbox_messages SET (fillfactor = 80)")
        op.execute("ALTER TABLE delivery_records SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE delivery_records RESET (fillfactor)")
        op.execute("ALTER TABLE outbox_messages RESET (fillfactor)")
    restore_outbox_message_id_unique(op)

"""router: the delivery records' indexes hold records in flight only.

Revision ID: router_0009
Revises: router_0008
Create Date: 2026-11-30

Measured in docs/performance.md, "Router's delivery records indexed while in flight: a
record's last update writes one index entry, not three (twenty-second round)". The
delivery engine's table, version 3 -> 4 (`add_in_flight_indexes`):

- `ix_delivery_records_due (state, next_attempt_at)` over every record becomes
  `ix_delivery_records_due (next_attempt_at) WHERE state = 'pending'` and
  `ix_delivery_records_leased (next_attempt_at) WHERE state = 'sending'`: the two claims
  and the next-due read each range over one of them, as they ranged over one state of the
  old index.
- `ix_delivery_records_aggregate (aggregate_id, state)` becomes `(aggregate_id) WHERE
  state = 'pending'`: router reads an alert's records by alert only to cancel its
  pending ones.

A record's last update (sending -> delivered, failed or skipped; pending -> cancelled)
changes `state`, so it is never HOT; it wrote an entry into all three indexes, and now
writes one, into the primary key. A hand-off's insert (state sending) writes two, not
three. The indexes keep only the queue, not every record ever sent.
"""

from collections.abc import Sequence

from alembic import op

from services.common.delivery import add_in_flight_indexes, drop_in_flight_indexes

revision: str = "router_0009"
down_revision: str | None = "router_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_in_flight_indexes(op, pending_aggregate=True)


def downgrade() -> None:
    drop_in_flight_indexes(op, pending_aggregate=True)

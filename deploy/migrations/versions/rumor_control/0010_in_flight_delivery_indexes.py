"""rumor_control: the delivery records' claim indexes hold records in flight only.

Revision ID: rumor_control_0010
Revises: rumor_control_0009
Create Date: 2026-11-30

The delivery engine's table, version 3 -> 4 (`add_in_flight_indexes`; measured on router
in docs/performance.md, "Router's delivery records indexed while in flight: a record's
last update writes one index entry, not three (twenty-second round)"):
`ix_delivery_records_due (state, next_attempt_at)` over every record becomes
`ix_delivery_records_due (next_attempt_at) WHERE state = 'pending'` and
`ix_delivery_records_leased (next_attempt_at) WHERE state = 'sending'`. The aggregate
index stays whole: a bulletin's deliveries are listed in every state.
"""

from collections.abc import Sequence

from alembic import op

from services.common.delivery import add_in_flight_indexes, drop_in_flight_indexes

revision: str = "rumor_control_0010"
down_revision: str | None = "rumor_control_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_in_flight_indexes(op)


def downgrade() -> None:
    drop_in_flight_indexes(op)

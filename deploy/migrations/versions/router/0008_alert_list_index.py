"""router: the alert list read newest first from an index.

Revision ID: router_0008
Revises: router_0007
Create Date: 2026-11-30

Measured in docs/performance.md, "Router's alert list read in its order from an index;
an e-mail sent from its parsed envelope (twenty-first round)". router_0007 dropped
`ix_alerts_state` so a notice's triggered -> delivered is a HOT update; the alert list
filtered by state (and the SMS reply's search of acknowledgeable alerts) then read and
sorted every alert, and alerts are never deleted. `ix_alerts_listed` holds the list's
order, `(triggered_at DESC, id)`: a page is its first entries whose rows pass the
filter, with no sort. A list of unresolved states also says `resolved_at IS NULL`, so it
may read only the unresolved alerts (the expiry's partial index) instead. Neither key
changes after the alert's insert, so the triggered -> delivered update stays HOT.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "router_0008"
down_revision: str | None = "router_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_alerts_listed", "alerts", [sa.text("triggered_at DESC"), "id"])


def downgrade() -> None:
    op.drop_index("ix_alerts_listed", table_name="alerts")

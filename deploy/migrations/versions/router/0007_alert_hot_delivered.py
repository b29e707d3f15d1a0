"""router: a notice's triggered -> delivered written as a HOT update.

Revision ID: router_0007
Revises: router_0006
Create Date: 2026-11-30

Measured in docs/performance.md, "Router's alert marked delivered in place: a HOT
update, no index on its state (twentieth round)". The outcome round's triggered ->
delivered sets only `state` and `updated_at`, yet it wrote a new entry into each of the
alerts' five indexes: `state` was a key of `ix_alerts_state` and in the predicate of
`ix_alerts_unresolved_expiry`, and PostgreSQL never makes an update HOT when an indexed
column (or one in an index's predicate) changes.

- `ix_alerts_state` goes: only the open-alerts gauge (a count by state every few
  seconds, a read of every alert either way) and the alert list filtered by state read
  by state; the list now reads the table.
- The expiry index keeps unresolved alerts by `resolved_at IS NULL`: set exactly when an
  alert is resolved (a notice cancelled, its window over), the same rows as
  `state != 'resolved'`.
- The alerts keep 30 % of each page free (fillfactor 70, PostgreSQL): a row is ~2 kB,
  and a HOT update needs room for its new version on the row's own page (at 80 % only
  rows up to ~2.0 kB keep it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "router_0007"
down_revision: str | None = "router_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_alerts_state", table_name="alerts")
    _expiry_index_where("resolved_at IS NULL")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE alerts SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE alerts RESET (fillfactor)")
    _expiry_index_where("state <> 'resolved'")
    op.create_index("ix_alerts_state", "alerts", ["state"])


def _expiry_index_where(predicate: str) -> None:
    """The partial index of unresolved alerts' expiries, rebuilt on `predicate`."""
    op.drop_index("ix_alerts_unresolved_expiry", table_name="alerts")
    unresolved = sa.text(predicate)
    op.create_index(
        "ix_alerts_unresolved_expiry",
        "alerts",
        ["expires_at"],
        postgresql_where=unresolved,
        sqlite_where=unresolved,
    )
